"""The exception types tinyprompt raises for bad input; the CLI prints each as a single line."""


class TinyPromptError(Exception):
    """A problem with the user's input (a file, a shape, a name): the message says what and where."""


class InvalidType(TinyPromptError, TypeError):
    """An argument of the wrong type (epochs="2", a list as the prompt): a TypeError too, as Python raises."""


class InvalidValue(TinyPromptError, ValueError):
    """An argument of the right type with a value that means nothing (seed=-1, a NaN prompt): a ValueError too."""
