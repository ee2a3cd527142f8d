"""Gradient accumulation and data parallelism as one weight matrix ``W[b, t]`` on the full batch.

One optimizer step sees ``B`` samples. They are dealt to ``R`` data-parallel ranks the way
``DistributedSampler(shuffle=False)`` deals them (sample i goes to rank ``i % R``), and each rank
cuts its share into ``G`` consecutive micro-batches (gradient-accumulation steps). Every rank
computes one scalar loss per micro-batch, backpropagates it, and DDP averages the gradients over
the ranks. Because every loss is a weighted sum of token losses, the whole step is one weighted sum
``sum(W * l)`` with ``W`` laid out like the original batch. How each micro-batch's loss is
normalized decides ``W``:

========= ==================================================== =========================================
normalize  loss of micro-batch k on rank r (before DDP's 1/R)   who does this
========= ==================================================== =========================================
naive      reduction(micro-batch alone) / G                     transformers < 4.46 (issue 24725)
global     R * [rows of the full-batch W]: counts all-reduced   ``num_items_in_batch`` (4.46) +
           over every micro-batch and rank                      ``average_tokens_across_devices`` (4.47)
sum        sum of m*l over the micro-batch / G                  open-instruct ``reduce_loss=sum``
local      [rows of the W of rank r's own samples]: counts      transformers with
           over the rank's micro-batches, not across ranks      ``average_tokens_across_devices=False``
unscaled   reduction(micro-batch alone), no / G                 transformers >= 4.46 with a
                                                                ``compute_loss`` that drops
                                                                ``num_items_in_batch`` (issue 37766)
========= ==================================================== =========================================

``local`` and ``unscaled`` were added when :mod:`lossviz.probe` measured the real transformers
``Trainer`` (5.24): its per-rank count and its unscaled fallback are neither ``naive`` nor
``global`` once GA > 1 (``TRAINER_NORMALIZATIONS`` lists all five).

``global`` equals the full-batch reduction exactly (for ``sample_mean`` the sample count is global);
``naive`` equals it only when every micro-batch holds the same number of tokens (of samples, for
``sample_mean``); ``sum`` ignores ``reduction`` (the loss is a sum by construction).

How the samples are split: rank r gets ``n_r`` samples; they fill ``G`` consecutive micro-batches
whose sizes differ by at most one, the larger first (5 samples, G = 2 -> sizes 3, 2). When a rank
has fewer samples than ``G`` (3 samples, G = 4 -> 1, 1, 1, 0) its last micro-batches are empty:
the loop still runs G steps and the loss is still divided by G, so an empty micro-batch adds 0
(``if_empty="zero"``). Every rank needs at least one sample (``B >= R``): a rank with no data
cannot take part in DDP's all-reduce. Each micro-batch keeps the full batch's width ``T`` (as if
padded to a fixed ``max_length``), which matters only for ``padded_mean``/``constant_norm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .checks import positive_int
from .reductions import _as_mask, weights

__all__ = [
    "NORMALIZATIONS",
    "TRAINER_NORMALIZATIONS",
    "split_batch",
    "micro_batch_weights",
    "accumulation_weights",
    "plan_weights",
]

NORMALIZATIONS = ("naive", "global", "sum")
TRAINER_NORMALIZATIONS = NORMALIZATIONS + ("local", "unscaled")


def split_batch(
    num_samples: int,
    *,
    micro_batches: int,
    world_size: int = 1,
    group_by: Sequence | None = None,
) -> list[list[list[int]]]:
    """``plan[r][k]``: indices of the samples in micro-batch k of rank r (the GA/DDP split).

    Sample i goes to rank ``i % world_size``; each rank's samples fill ``micro_batches``
    consecutive micro-batches whose sizes differ by at most one, larger first (a micro-batch is
    empty only when the rank has fewer samples than ``micro_batches``).
    ``split_batch(5, micro_batches=2, world_size=2)`` -> ``[[[0, 2], [4]], [[1], [3]]]``.
    ``group_by``: one sort key per sample (a length, or a tuple of lengths); the samples are dealt
    in the order of their keys (a stable sort), so similar lengths share a micro-batch, as
    transformers' ``group_by_length`` arranges them.
    ``split_batch(4, micro_batches=2, group_by=[9, 2, 7, 1])`` -> ``[[[3, 1], [2, 0]]]``.
    """
    num_samples = positive_int("num_samples", num_samples)
    G = positive_int("micro_batches", micro_batches)
    R = positive_int("world_size", world_size)
    if num_samples < R:
        raise ValueError(
            f"world_size={R} needs at least {R} samples (one per rank), got {num_samples}: "
            "a rank without data cannot join DDP's gradient all-reduce"
        )
    order = list(range(num_samples))
    if group_by is not None:
        keys = list(group_by)
        if len(keys) != num_samples:
            raise ValueError(
                f"group_by needs one key per sample ({num_samples}), got {len(keys)} keys"
            )
        order.sort(key=keys.__getitem__)
    plan = []
    for r in range(R):
        mine = order[r::R]
        size, extra = divmod(len(mine), G)
        cuts = [0]
        for k in range(G):
            cuts.append(cuts[-1] + size + (1 if k < extra else 0))
        plan.append([mine[cuts[k] : cuts[k + 1]] for k in range(G)])
    return plan


def _check_normalize(normalize: str) -> None:
    if normalize not in TRAINER_NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {TRAINER_NORMALIZATIONS}, got {normalize!r}")


def micro_batch_weights(
    mask: torch.Tensor,
    plan: list[list[list[int]]],
    *,
    reduction: str = "token_mean",
    normalize: str = "global",
    **params,
) -> list[list[torch.Tensor]]:
    """``local[r][k]: [len(plan[r][k]), T]``: the weights rank r puts on micro-batch k's rows.

    Rank r backpropagates ``sum(local[r][k] * l[plan[r][k]])`` for each k; DDP then averages the
    gradients over the ranks, so the step's weight of sample ``plan[r][k][j]`` is
    ``local[r][k][j] / R``. ``naive``: ``weights(mb, reduction) / G``; ``global``:
    ``R * weights(full batch, reduction)[rows]`` (the all-reduced count, times R to undo DDP's mean);
    ``sum``: ``mb / G``; ``local``: ``weights(rank r's rows, reduction)[rows]``; ``unscaled``:
    ``weights(mb, reduction)``.
    """
    _check_normalize(normalize)
    mask = _as_mask(mask)
    R = len(plan)
    G = len(plan[0])
    full = weights(mask, reduction, **params) if normalize == "global" else None
    local = []
    for rank in plan:
        per_rank = []
        mine = [i for rows in rank for i in rows]
        if normalize == "local":
            own = weights(mask.index_select(0, torch.tensor(mine)), reduction, **params)
            where = {i: j for j, i in enumerate(mine)}
        for rows in rank:
            idx = torch.tensor(rows, dtype=torch.long)
            mb = mask.index_select(0, idx)
            if not rows:
                per_rank.append(mb)
            elif normalize == "global":
                per_rank.append(full.index_select(0, idx) * R)
            elif normalize == "naive":
                per_rank.append(weights(mb, reduction, if_empty="zero", **params) / G)
            elif normalize == "unscaled":
                per_rank.append(weights(mb, reduction, if_empty="zero", **params))
            elif normalize == "local":
                per_rank.append(own.index_select(0, torch.tensor([where[i] for i in rows])))
            else:
                per_rank.append(mb / G)
        local.append(per_rank)
    return local


def accumulation_weights(
    mask: torch.Tensor,
    *,
    micro_batches: int,
    world_size: int = 1,
    reduction: str = "token_mean",
    normalize: str = "global",
    group_by: Sequence | None = None,
    **params,
) -> torch.Tensor:
    """``W: [B, T]`` of one optimizer step with GA and DDP, so the step's loss is ``sum(W * l)``.

    ``mask: [B, T]``, one row per sample. ``W[i] = local[r][k][j] / R`` where sample i is row j
    of micro-batch k on rank r (see :func:`split_batch`, :func:`micro_batch_weights`;
    ``group_by`` sorts the samples before they are dealt).
    ``normalize="global"`` gives ``lv.weights(mask, reduction)`` (up to the rounding of ``* R / R``).
    """
    _check_normalize(normalize)
    mask = _as_mask(mask)
    plan = split_batch(
        mask.shape[0], micro_batches=micro_batches, world_size=world_size, group_by=group_by
    )
    return plan_weights(mask, plan, reduction=reduction, normalize=normalize, **params)


def plan_weights(
    mask: torch.Tensor,
    plan: list[list[list[int]]],
    *,
    reduction: str = "token_mean",
    normalize: str = "global",
    **params,
) -> torch.Tensor:
    """``W: [B, T]`` of one step whose samples were dealt as ``plan[r][k]`` (any dealing).

    Like :func:`accumulation_weights`, for a plan read off a real trainer (accelerate deals whole
    batches to ranks, not samples): ``W[i] = local[r][k][j] / R``; every sample must appear once.
    """
    _check_normalize(normalize)
    mask = _as_mask(mask)
    seen = sorted(i for rank in plan for rows in rank for i in rows)
    if seen != list(range(mask.shape[0])):
        raise ValueError(
            f"plan must deal every one of the {mask.shape[0]} samples exactly once, got {seen}"
        )
    local = micro_batch_weights(mask, plan, reduction=reduction, normalize=normalize, **params)
    W = torch.zeros_like(mask)
    for rank_plan, rank_w in zip(plan, local, strict=True):
        for rows, w in zip(rank_plan, rank_w, strict=True):
            if rows:
                W[torch.tensor(rows, dtype=torch.long)] = w / len(plan)
    return W
