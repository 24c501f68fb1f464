"""The one exception type for bad input (a command reports it as ``error: ...``) and the number check raising it."""

import math


class InputError(ValueError):
    """Bad input from the user: a missing directory, a corrupt file, a bad option.

    Commands print it as one line starting ``error:`` and exit with status 2.
    """


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``float(value)`` if it is a finite number in the range; anything else (NaN, infinity, text) is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and (value > high or (high_open and value == high))
    if (too_low or too_high) and low is not None and high is not None:
        raise InputError(f"{name} must lie in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}, "
                         f"got {value:g}")
    if too_low:
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if too_high:
        raise InputError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {value:g}")
    return float(value)
