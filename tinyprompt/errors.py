"""The one exception type tinyprompt raises for bad input; the CLI prints it as a single line."""


class TinyPromptError(Exception):
    """A problem with the user's input (a file, a shape, a name): the message says what and where."""
