"""Argument checks shared by the whole package: one integer rule, one number rule, one list parser.

Every public function, the CLI and every explorer read user input through these, so the same bad
input gets the same clear message everywhere: it names the argument, what was given and the fix.
Integers are exact: ``1.7`` is not silently truncated to 1, ``True`` is not 1, and text digits
outside ASCII (``'²'``, ``'٣'``) are refused rather than read by ``int()``'s Unicode rules.
"""

from __future__ import annotations

import argparse
import math
import numbers
import re
from collections.abc import Callable

import torch

__all__ = [
    "ArgumentTypeError",
    "integer",
    "positive_int",
    "number",
    "integer_list",
    "parse_list",
    "parse_int",
    "arg_type",
    "int_arg",
    "positive_float_arg",
    "float_dtype",
]


class ArgumentTypeError(TypeError, ValueError):
    """A value of the wrong type: both a ``TypeError`` and a ``ValueError``, so callers that catch
    either (older lossviz raised one or the other for the same input) keep working."""


_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_SEPARATORS = re.compile(r"\s*[,;]\s*|\s+")


def integer(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]``; a ``TypeError``/``ValueError`` naming ``name`` else.

    Accepts Python/NumPy integers and 0-dim integer tensors; refuses bools, floats (even 3.0: a
    float where a count belongs is usually a bug upstream) and strings.
    """
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(
            f"{name} must be an integer, got {type(value).__name__} {value!r}"
            + (
                "; round it yourself (int(round(x))) if that is what you mean"
                if _is_real(value)
                else ""
            )
        )
    value = int(value)
    _check_range(name, value, low, high, "integer")
    return value


def positive_int(name: str, value: object) -> int:
    """``value`` as an ``int >= 1``, or an error naming ``name``."""
    return integer(name, value, low=1)


def number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    finite: bool = True,
) -> float:
    """``value`` as a finite ``float`` in ``[low, high]``; strings, bools and NaN are refused."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not _is_real(value):
        raise ArgumentTypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    _check_range(name, value, low, high)
    return value


def integer_list(
    name: str, values: object, *, low: int | None = None, high: int | None = None
) -> list[int]:
    """A non-empty sequence (list, tuple, 1-d integer tensor) as a list of checked ints."""
    if isinstance(values, torch.Tensor):
        if values.is_floating_point() or values.dim() != 1:
            raise ArgumentTypeError(
                f"{name} must be a 1-d integer tensor or a list of integers, got "
                f"{values.dtype} of shape {tuple(values.shape)}"
            )
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ArgumentTypeError(
            f"{name} must be a list of integers such as [3, 7, 20], got {values!r}"
        )
    if len(values) == 0:
        raise ValueError(f"{name} is empty: give at least one value")
    return [integer(f"{name}[{i}]", v, low=low, high=high) for i, v in enumerate(values)]


def parse_list(
    text: str,
    what: str,
    *,
    kind: type = int,
    low: float | None = None,
    high: float | None = None,
    example: str = "12, 40, 7",
) -> list:
    """``"12, 40 ;7"`` -> ``[12, 40, 7]``: text typed by a person (CLI option, explorer text box).

    Entries are separated by commas, semicolons or spaces; an empty entry between two commas is an
    error. ``kind=int`` takes ASCII integers only; ``kind=float`` any finite ASCII number (``1e-8``);
    ``kind=str`` names (``low``/``high`` then do not apply).
    A ``ValueError`` names ``what``, the wrong entry and shows ``example``.
    """
    text = str(text)
    body = text.strip().strip(",;").strip()
    plural = what if what.endswith("s") else f"{what}s"
    if not body:
        raise ValueError(f"type at least one {what}, e.g. {example}")
    parts = _SEPARATORS.split(body)
    if any(not p for p in parts):
        raise ValueError(
            f"{plural} must be comma-separated values such as {example}; {text!r} has an empty "
            "entry between two commas"
        )
    out = []
    for p in parts:
        value = _parse_one(p, kind)
        if value is None:
            noun = _plural_noun(kind, low)
            raise ValueError(
                f"{plural} must be comma-separated {noun} such as {example}; {p!r} is not one"
            )
        if kind is not str:
            _check_range(what, value, low, high, "integer" if kind is int else "number")
        out.append(value)
    return out


def parse_int(text: str, what: str, *, low: int | None = None, high: int | None = None) -> int:
    """One integer typed by a person (a CLI option): ``parse_list`` with exactly one entry."""
    value = _parse_one(str(text).strip(), int)
    if value is None:
        need = "a positive integer" if low == 1 else "an integer"
        raise ValueError(f"{what} must be {need} such as 4, got {text!r}")
    _check_range(what, value, low, high, "integer")
    return value


def _plural_noun(kind: type, low: float | None) -> str:
    noun = "integers" if kind is int else "finite numbers"
    if low == 1 and kind is int:
        return "positive integers"
    if low == 0:
        return f"non-negative {noun}"
    return noun


def _parse_one(text: str, kind: type) -> int | float | str | None:
    if kind is str:
        return text
    if kind is int:
        return int(text) if _INT_TEXT.fullmatch(text) else None
    if not text.isascii():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def arg_type(check: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type=``: runs ``check(text)`` and shows its ``ValueError``/``TypeError`` message.

    (argparse would otherwise replace the message by a generic "invalid value".)
    """

    def parse(text: str) -> object:
        try:
            return check(text)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def int_arg(flag: str, *, low: int | None = 1) -> Callable[[str], int]:
    """An argparse ``type=`` for an integer option ``flag`` that must be ``>= low`` (default 1)."""
    return arg_type(lambda text: parse_int(text, flag, low=low))


def positive_float_arg(text: str) -> float:
    """An argparse ``type=`` for a positive finite number (a learning rate, a temperature)."""
    try:
        value = float(text) if text.strip().isascii() else math.nan
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def float_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype for token counts and weights: float64 if any input is float64, else float32.

    The one dtype rule of lossviz: a count ``N`` or a weight ``1/N`` is never kept in float16 or
    bfloat16, whatever the loss dtype. float16 cannot hold ``N > 65504`` (an 8 x 8192 batch), and
    bfloat16 counts exactly only to 256; float32 counts exactly to ``2**24`` tokens.
    """
    return torch.float64 if torch.float64 in dtypes else torch.float32


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_range(
    name: str, value: float, low: float | None, high: float | None, noun: str = "number"
) -> None:
    if (low is None or value >= low) and (high is None or value <= high):
        return
    article = "an" if noun[0] in "aeiou" else "a"
    if high is None and low in (0, 1):
        need = f"a {'positive' if low == 1 else 'non-negative'} {noun}"
    elif high is None:
        need = f"{article} {noun} >= {low}"
    elif low is None:
        need = f"{article} {noun} <= {high}"
    else:
        need = f"{article} {noun} between {low} and {high}"
    raise ValueError(f"{name} must be {need}, got {_shown(value)}")


def _shown(value: float) -> str:
    """``value`` for a message: digits up to 12, else its size (an int too large for a float is
    never converted to one: ``f"{10**400:g}"`` raises ``OverflowError``)."""
    if isinstance(value, int):
        if abs(value) < 10**12:
            return f"{value}"
        if value.bit_length() < 10_000:  # str() of an int has a limit (4300 digits by default)
            return f"{'a negative' if value < 0 else 'an'} integer of {len(str(abs(value)))} digits"
        digits = int(value.bit_length() * math.log10(2))
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"
    return f"{value:g}"
