"""Gradient accumulation and data parallelism as one weight matrix ``W[b, t]`` on the full batch.

One optimizer step sees its samples dealt to ``R`` data-parallel ranks and ``K`` micro-batches
(gradient-accumulation steps) per rank by a rule of :mod:`lossviz.step_shape`: by default the way
``DistributedSampler(shuffle=False)`` deals them (``dealing="sampler"``: sample i to rank ``i % R``),
or the transformers ``Trainer``'s whole batches (``dealing="trainer"``). Every rank
computes one scalar loss per micro-batch, backpropagates it, and DDP averages the gradients over
the ranks. Because every loss is a weighted sum of token losses, the whole step is one weighted sum
``sum(W * l)`` with ``W`` laid out like the original batch. How each micro-batch's loss is
normalized decides ``W``:

========= ==================================================== =========================================
normalize  loss of micro-batch k on rank r (before DDP's 1/R)   who does this
========= ==================================================== =========================================
naive      reduction(micro-batch alone) / K                     transformers < 4.46 (issue 24725)
global     R * [rows of the full-batch W]: counts all-reduced   ``num_items_in_batch`` (4.46) +
           over every micro-batch and rank                      ``average_tokens_across_devices`` (4.47)
sum        sum of m*l over the micro-batch / K                  open-instruct ``reduce_loss=sum``
local      [rows of the W of rank r's own samples]: counts      transformers with
           over the rank's micro-batches, not across ranks      ``average_tokens_across_devices=False``
unscaled   reduction(micro-batch alone), no / K                 transformers >= 4.46 with a
                                                                ``compute_loss`` that drops
                                                                ``num_items_in_batch`` (issue 37766)
========= ==================================================== =========================================

``local`` and ``unscaled`` are the real transformers ``Trainer`` (5.24) in two configurations, as
:mod:`lossviz.probe` measures it: its per-rank count and its unscaled fallback are neither
``naive`` nor ``global`` once GA > 1 (``TRAINER_NORMALIZATIONS`` lists all five).

``global`` equals the full-batch reduction exactly (for ``sample_mean`` the sample count is global);
``naive`` equals it only when every micro-batch holds the same number of tokens (of samples, for
``sample_mean``); ``sum`` ignores ``reduction`` (the loss is a sum by construction).

How the sampler rule splits them: rank r gets ``n_r`` samples; they fill ``K`` consecutive
micro-batches whose sizes differ by at most one, the larger first (5 samples, K = 2 -> sizes 3, 2).
When a rank has fewer samples than ``K`` (3 samples, K = 4 -> 1, 1, 1, 0) its last micro-batches
are empty: the loop still runs K steps and the loss is still divided by K, so an empty micro-batch
adds 0 (``if_empty="zero"``). Every rank needs at least one sample (``B >= R``): a rank with no data
cannot take part in DDP's all-reduce. Each micro-batch keeps the full batch's width ``T`` (as if
padded to a fixed ``max_length``), which matters only for ``padded_mean``/``constant_norm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .reductions import _as_mask, weights
from .step_shape import deal, locate

__all__ = [
    "NORMALIZATIONS",
    "TRAINER_NORMALIZATIONS",
    "micro_batch_weights",
    "accumulation_weights",
    "plan_weights",
]

NORMALIZATIONS = ("naive", "global", "sum")
TRAINER_NORMALIZATIONS = NORMALIZATIONS + ("local", "unscaled")


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
    ``local[r][k][j] / R``. ``naive``: ``weights(mb, reduction) / K``; ``global``:
    ``R * weights(full batch, reduction)[rows]`` (the all-reduced count, times R to undo DDP's mean);
    ``sum``: ``mb / K``; ``local``: ``weights(rank r's rows, reduction)[rows]``; ``unscaled``:
    ``weights(mb, reduction)``.
    """
    _check_normalize(normalize)
    mask = _as_mask(mask)
    R = len(plan)
    K = len(plan[0])
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
                per_rank.append(weights(mb, reduction, if_empty="zero", **params) / K)
            elif normalize == "unscaled":
                per_rank.append(weights(mb, reduction, if_empty="zero", **params))
            elif normalize == "local":
                per_rank.append(own.index_select(0, torch.tensor([where[i] for i in rows])))
            else:
                per_rank.append(mb / K)
        local.append(per_rank)
    return local


def accumulation_weights(
    mask: torch.Tensor,
    *,
    ga_steps: int,
    world_size: int = 1,
    reduction: str = "token_mean",
    normalize: str = "global",
    dealing: str = "sampler",
    group_by: Sequence | None = None,
    **params,
) -> torch.Tensor:
    """``W: [B, T]`` of one optimizer step with GA and DDP, so the step's loss is ``sum(W * l)``.

    ``mask: [B, T]``, one row per sample. ``W[i] = local[r][k][j] / R`` where sample i is row j
    of micro-batch k on rank r, dealt by :func:`lossviz.step_shape.deal` (``dealing``:
    ``"sampler"`` or ``"trainer"``; ``group_by`` sorts the samples first) and weighted by
    :func:`micro_batch_weights`.
    ``normalize="global"`` gives ``lv.weights(mask, reduction)`` (up to the rounding of ``* R / R``).
    """
    _check_normalize(normalize)
    mask = _as_mask(mask)
    plan = deal(
        mask.shape[0], ga_steps=ga_steps, world_size=world_size, dealing=dealing, group_by=group_by
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
    if len(locate(plan)) != mask.shape[0]:
        raise ValueError(
            f"plan must deal every one of the {mask.shape[0]} samples exactly once, "
            f"got {sorted(i for rank in plan for rows in rank for i in rows)}"
        )
    local = micro_batch_weights(mask, plan, reduction=reduction, normalize=normalize, **params)
    W = torch.zeros_like(mask)
    for rank_plan, rank_w in zip(plan, local, strict=True):
        for rows, w in zip(rank_plan, rank_w, strict=True):
            if rows:
                W[torch.tensor(rows, dtype=torch.long)] = w / len(plan)
    return W
