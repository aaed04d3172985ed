"""argparse ``type=`` functions shared by the benchmarks and the launch/ scripts.

A bad value stops the command while its arguments are parsed, before anything runs, as one
line naming the flag, the value and what is wrong (argparse prefixes ``argument --FLAG:``),
e.g. ``hypercrl bench train: error: argument --repeats: must be 1 or more, got 0``.
"""

from __future__ import annotations

import argparse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None


def positive_int(text: str) -> int:
    """An integer of 1 or more."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of 0 or more."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def int_list(text: str) -> list[int]:
    """Integers separated by commas (``0,1,2``), at least one."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected integers separated by commas") from None
    if not values:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected integers separated by commas, got none")
    return values


def non_negative_float(text: str) -> float:
    """A finite number of 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of 0 or more, got {text}")
    return value
