"""The math behind three pitfalls users file against trainers: who deals which sample, a count that
over-counts parallel ranks, and an evaluation loss that averages batch means.

- :func:`trainer_plan`: how the transformers ``Trainer`` (accelerate) deals one optimizer step's
  samples to ranks and micro-batches, as ``plan[r][k]`` for :func:`lossviz.accumulation.plan_weights`.
- :func:`parallel_loss_factor`: the factor by which a reported loss is off when a token count is
  all-gathered over tensor-/sequence-parallel ranks and then divided and multiplied by rank counts.
- :func:`eval_weights` and :func:`eval_loss`: each evaluation token's weight, and the evaluation loss
  (its ``exp`` is the perplexity), for a token-weighted mean, a mean of batch means, and the
  ``Trainer.evaluate`` rule (each batch's mean repeated once per sample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .checks import positive_int

__all__ = ["EVAL_WEIGHTINGS", "eval_loss", "eval_weights", "parallel_loss_factor", "trainer_plan"]

EVAL_WEIGHTINGS = ("token", "batch", "sample")


def trainer_plan(
    num_samples: int, *, per_device_batch_size: int, ga_steps: int, world_size: int = 1
) -> list[list[list[int]]]:
    """``plan[r][k]``: the samples of micro-batch k on rank r, as the Trainer deals one step in order.

    The sampler's order is cut into batches of ``per_device_batch_size`` consecutive samples; batch j
    goes to rank ``j % world_size`` as its micro-batch ``j // world_size`` (accelerate deals whole
    batches, not samples). Needs ``num_samples = per_device_batch_size * ga_steps * world_size``.
    ``trainer_plan(8, per_device_batch_size=1, ga_steps=4, world_size=2)`` ->
    ``[[[0], [2], [4], [6]], [[1], [3], [5], [7]]]``.
    """
    b = positive_int("per_device_batch_size", per_device_batch_size)
    g = positive_int("ga_steps", ga_steps)
    r = positive_int("world_size", world_size)
    n = positive_int("num_samples", num_samples)
    if n != b * g * r:
        raise ValueError(
            f"one optimizer step takes per_device_batch_size * ga_steps * world_size = {b * g * r} "
            f"samples, got num_samples={n}; give that many samples or change the three sizes"
        )
    plan: list[list[list[int]]] = [[] for _ in range(r)]
    for j in range(g * r):
        plan[j % r].append(list(range(j * b, (j + 1) * b)))
    return plan


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


def _counts(counts: Sequence[int], name: str = "counts") -> torch.Tensor:
    values = [positive_int(f"{name}[{k}]", c) for k, c in enumerate(counts)]
    if not values:
        raise ValueError(f"{name} must name at least one evaluation batch, got an empty list")
    return torch.tensor(values, dtype=torch.float64)


def eval_weights(
    counts: Sequence[int], *, weighting: str = "token", sizes: Sequence[int] | None = None
) -> torch.Tensor:
    """``w: [K]``: the weight of each token of evaluation batch k, so ``eval loss = sum_k w_k S_k``.

    ``counts[k]``: batch k's scored tokens ``n_k`` (``S_k`` their summed CE). ``weighting``:
    ``"token"``: ``1 / sum n`` (the mean over the eval set's tokens; ``exp`` is its perplexity);
    ``"batch"``: ``1 / (K n_k)`` (a mean of batch means); ``"sample"``: ``s_k / (sum s * n_k)``, with
    ``sizes[k] = s_k`` samples in batch k (``Trainer.evaluate``: each batch's mean once per sample).
    """
    if weighting not in EVAL_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {EVAL_WEIGHTINGS}, got {weighting!r}")
    n = _counts(counts)
    if weighting == "token":
        return torch.full_like(n, 1.0 / float(n.sum()))
    if weighting == "batch":
        return 1.0 / (len(n) * n)
    if sizes is None:
        raise ValueError("weighting='sample' needs sizes: the number of samples in each batch")
    s = _counts(sizes, "sizes")
    if len(s) != len(n):
        raise ValueError(f"sizes has {len(s)} batches but counts has {len(n)}; give one per batch")
    return s / (s.sum() * n)


def eval_loss(
    batch_losses: Sequence[torch.Tensor],
    *,
    weighting: str = "token",
    sizes: Sequence[int] | None = None,
) -> float:
    """The evaluation loss ``sum_k w_k S_k`` from each batch's scored token losses (1-D tensors).

    ``w`` from :func:`eval_weights`; ``math.exp`` of the ``"token"`` value is the eval set's
    perplexity. Raises on a batch with no scored token (its mean would be 0/0) or a non-finite loss.
    """
    losses = [torch.as_tensor(x, dtype=torch.float64).reshape(-1) for x in batch_losses]
    for k, x in enumerate(losses):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"batch_losses[{k}] holds a NaN or infinite loss; fix it first")
    w = eval_weights([x.numel() for x in losses], weighting=weighting, sizes=sizes)
    total = sum(float(wk) * float(x.sum()) for wk, x in zip(w, losses, strict=True))
    if not math.isfinite(total):
        raise ValueError("the evaluation loss overflowed; check batch_losses")
    return total
