"""Range checks of values that come from the config or the command line, said once for every
layer (the schema in ``isl.training.config`` checks names and types; these check what the types cannot)."""

from __future__ import annotations

import argparse
from numbers import Integral


def positive_int(key: str, value, none: str | None = None) -> int | None:
    """``value`` as an int if it is an integer >= 1 (a bool is not), else a ValueError naming
    ``key``. With ``none`` (what null means, e.g. ``"null (all)"``), None is allowed too."""
    if value is None and none is not None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        allowed = f" or {none}" if none is not None else ""
        raise ValueError(f"{key} must be a positive integer{allowed}, got {value!r}")
    return int(value)


def positive_int_arg(text: str) -> int:
    """``positive_int`` as an argparse ``type=``: ``argument --n: must be a positive integer``."""
    try:
        return positive_int("value", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
