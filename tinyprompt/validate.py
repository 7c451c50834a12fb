"""Argument checks shared by the command line (cli.py) and the Python API (api.py, TrainConfig), so that the
two cannot drift apart. Each check names the argument as its caller spells it ("--epochs" on the command line,
"max_new_tokens" in Python) and the value, in one line:

    integer("--seed", -1, low=0)        # InvalidValue: --seed -1: must be at least 0
    number("lr", "0.1", lambda v: v > 0, "a positive number")   # InvalidType: lr '0.1': must be a number, got str

A wrong type raises InvalidType (also a TypeError), a wrong value InvalidValue (also a ValueError); both are
TinyPromptErrors. A check returns the value in its plain form (a NumPy integer as an int, a Path as a str), which
is what metrics.json and the checkpoint can hold.
"""

import math
import numbers
import os

import numpy as np

from .errors import InvalidType, InvalidValue


def shown(value):
    """A value as a message shows it: a number as it prints, anything else repr'd and cut to 60 characters."""
    text = str(value) if isinstance(value, numbers.Number) else repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def need(ok, name, value, rule):
    if not ok:
        raise InvalidValue(f"{name} {shown(value)}: must be {rule}")


def of_type(name, value, types, what):
    """`value` if it is one of `types` (a bool is no number), else InvalidType saying `what` it must be."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise InvalidType(f"{name} {shown(value)}: must be {what}, got {type(value).__name__}")
    return value


def integer(name, value, low=None, high=None, optional=False):
    """An int (a NumPy integer too; not a bool, not 2.0) in [low, high]; None passes if optional."""
    if optional and value is None:
        return None
    value = int(of_type(name, value, (numbers.Integral,), "an integer"))
    need(low is None or value >= low, name, value, f"at least {low}")
    need(high is None or value <= high, name, value, f"at most {high}")
    return value


def number(name, value, ok=lambda v: True, rule="a finite number", optional=False):
    """A finite real number (an int too; not a bool, not a str) for which ok(value) holds, as a float."""
    if optional and value is None:
        return None
    value = float(of_type(name, value, (numbers.Real,), "a number"))
    need(math.isfinite(value) and ok(value), name, value, rule)
    return value


def flag(name, value):
    return of_type(name, value, (bool,), "True or False")


def text(name, value, optional=False, empty=False):
    """A str (non-empty unless `empty`); None passes if optional."""
    if optional and value is None:
        return None
    need(of_type(name, value, (str,), "a string") or empty, name, value, "a non-empty string")
    return value


def choice(name, value, options):
    if value not in options:
        raise InvalidValue(f"{name} {shown(value)}: choose {', '.join(options)}")
    return value


def path(name, value, optional=False):
    """A file or folder name, a str or a pathlib.Path, returned as a str; None passes if optional."""
    if optional and value is None:
        return None
    value = os.fspath(of_type(name, value, (str, os.PathLike), "a path (a str or a pathlib.Path)"))
    need(isinstance(value, str) and value, name, value, "a non-empty path")
    return value


def rows_or_path(name, value, optional=False):
    """Data: a .jsonl/.csv/.tsv file's path (as a str), or a list of row dicts (checked when tokenized)."""
    if isinstance(value, list) or (optional and value is None):
        return value
    of_type(name, value, (str, os.PathLike), "a data file's path or a list of row dicts")
    return path(name, value)


def instance(name, value, cls, how, optional=False):
    """`value` if it is a `cls` (the model, the tokenizer), else InvalidType saying `how` to get one."""
    return value if optional and value is None else of_type(name, value, (cls,), f"a {cls.__name__} ({how})")


def prompt(name, value, n_embd=None, optional=True):
    """A soft prompt: a float NumPy array [P, C] with P >= 1, C = n_embd (when given), every value finite."""
    if optional and value is None:
        return None
    of_type(name, value, (np.ndarray,), "a NumPy array [P, C]" + " or None" * optional)
    C = "C" if n_embd is None else n_embd
    if value.ndim != 2 or 0 in value.shape or (n_embd is not None and value.shape[1] != n_embd):
        raise InvalidValue(f"{name} shape {value.shape} does not match the model's n_embd {C}: must be [P, {C}]")
    if value.dtype.kind != "f":
        raise InvalidType(f"{name} {value.dtype} {list(value.shape)}: must be a float array")
    if not np.isfinite(value).all():
        raise InvalidValue(f"{name} {list(value.shape)} holds NaN or inf values")
    return value


def sampling(style="python", max_new_tokens=50, temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0,
             seed=0):
    """generate's settings, named --max-new-tokens (style="cli") or max_new_tokens; -> them as a dict."""
    def name(field):
        return "--" + field.replace("_", "-") if style == "cli" else field
    return {"max_new_tokens": integer(name("max_new_tokens"), max_new_tokens, low=0),
            "temperature": number(name("temperature"), temperature, lambda v: v >= 0, "a finite number >= 0"),
            "top_k": integer(name("top_k"), top_k, low=0),
            "top_p": number(name("top_p"), top_p, lambda v: 0 < v <= 1, "in (0, 1]"),
            "repetition_penalty": number(name("repetition_penalty"), repetition_penalty, lambda v: v > 0,
                                         "a finite number > 0"),
            "seed": integer(name("seed"), seed, low=0)}
