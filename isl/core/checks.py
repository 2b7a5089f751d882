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


def positive_float_arg(text: str) -> float:
    """An argparse ``type=`` for a number > 0 (a sampling temperature)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def non_negative_float_arg(text: str) -> float:
    """An argparse ``type=`` for a number >= 0 (a sampling bias, a guidance weight)."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value
