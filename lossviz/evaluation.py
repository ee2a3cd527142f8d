"""Evaluation loss as a weighted sum: which mean an ``eval_loss`` is, and its perplexity.

:func:`eval_weights` gives each evaluation token's weight and :func:`eval_loss` the loss (its ``exp``
is the perplexity) for a token-weighted mean, a mean of batch means, and the ``Trainer.evaluate``
rule (each batch's mean repeated once per sample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .checks import positive_int

__all__ = ["EVAL_WEIGHTINGS", "eval_loss", "eval_weights"]

EVAL_WEIGHTINGS = ("token", "batch", "sample")


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
