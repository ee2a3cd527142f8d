"""A loss count over tensor- and sequence-parallel ranks: the factor a reported loss is off by.

:func:`parallel_loss_factor`: when a token count is all-gathered over a mesh of data-, tensor- and
sequence-parallel ranks and then divided and multiplied by rank counts, the reported loss is the
true token mean times this factor (1 is right).
"""

from __future__ import annotations

from .checks import positive_int

__all__ = ["parallel_loss_factor"]


def parallel_loss_factor(
    dp: int, tp: int = 1, sp: int = 1, *, count_divisor: int, multiplier: int
) -> float:
    """Reported loss / true token mean, when every rank reports ``(its CE sum / count) * multiplier``.

    Mesh of ``dp * tp * sp`` ranks: tensor parallelism (``tp``) gives the same tokens to ``tp`` ranks,
    sequence parallelism (``sp``) splits them over ``sp`` ranks. ``count`` is the all-gathered sum of
    every rank's token count (``tp * N``: each replica counts its tokens) divided by ``count_divisor``,
    and the logged loss is the mean over all ranks. Summing the ranks' losses gives
    ``factor = count_divisor * multiplier / (dp * tp * sp)`` (1 is right; every token's weight in the
    reported loss is ``factor / N``). Right: ``count_divisor = tp`` and ``multiplier = dp * sp``.
    """
    dp, tp, sp = (positive_int(n, v) for n, v in (("dp", dp), ("tp", tp), ("sp", sp)))
    count_divisor = positive_int("count_divisor", count_divisor)
    multiplier = positive_int("multiplier", multiplier)
    return count_divisor * multiplier / (dp * tp * sp)
