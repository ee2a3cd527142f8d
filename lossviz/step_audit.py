"""What each sample of one GA / data-parallel step really weighs, beside what was intended.

:func:`audit_table` deals one step's samples (``lengths`` in data-loader order) by a rule of
:mod:`lossviz.step_shape` (the transformers ``Trainer``'s by default) and gives each sample's total
weight ``sum_t W[b, t]`` under the full-batch reduction (intended), naive accumulation (each
micro-batch normalized alone, as transformers < 4.46 did), global normalization (the fix) and a
summed loss; :func:`fix_lines` says in words which fix applies, with :data:`FIXES` naming where
each landed. ``lossviz audit`` prints both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .accumulation import accumulation_weights
from .reductions import resolve_reduction, weights
from .step_shape import check_step, deal, locate

__all__ = ["AUDIT_COLUMNS", "FIXES", "audit_table", "fix_lines"]

AUDIT_COLUMNS = ("naive", "global", "sum")

# Where each fix landed, checked against the released wheels' trainer.py / training_args.py.
FIXES = {
    "ga": (
        "transformers 4.46.0: the Trainer counts the tokens of all micro-batches first and passes "
        "num_items_in_batch to the loss (PR #34191; https://github.com/huggingface/transformers/"
        "issues/24725)"
    ),
    "dp": (
        "transformers 4.47.0: average_tokens_across_devices all-reduces num_items_in_batch and "
        "multiplies the loss by the world size (PR #34373, issue #34242); off by default until "
        "4.54.0 made it True (PR #39395)"
    ),
    "manual": (
        "in your own loop: all-reduce the token count N over ranks and micro-batches, use "
        "loss = sum(m*l) / N * world_size (DDP divides by world_size); Megatron-LM "
        "--calculate-per-token-loss and torchtune's scale_grads do the same"
    ),
}


def audit_table(
    lengths: Sequence[int],
    *,
    per_device_batch_size: int,
    ga_steps: int,
    world_size: int = 1,
    reduction: str = "token_mean",
    dealing: str = "trainer",
) -> dict:
    """Per-sample weights ``[B]`` (shares of the step for a mean) of one step, JSON-ready.

    ``len(lengths) = per_device_batch_size * ga_steps * world_size`` (:func:`check_step`).
    Returns ``{"plan", "rank_mb", "intended", "naive", "global", "sum", "ratio" (naive /
    intended), "worst_up", "worst_down"}``; ``rank_mb[i] = (p, k)`` holds sample i.
    """
    lengths = list(lengths)
    check_step(
        len(lengths),
        per_device_batch_size=per_device_batch_size,
        ga_steps=ga_steps,
        world_size=world_size,
    )
    # One column per sample holding its token count n_b: every reduction gives each trained token of
    # a sample the same weight, so a row's total weight needs only n_b (and T for the reductions that
    # divide by the padded length). The cost grows with the number of samples, not with the lengths.
    counts = torch.tensor(lengths, dtype=torch.float64).unsqueeze(1)
    red = resolve_reduction(reduction)
    T = max(lengths)
    params = {"max_length": T} if "max_length" in red.params else {}
    # padded_mean divides by B*T, and the count column has T = 1
    scale = 1.0 / T if red.name == "padded_mean" else 1.0
    plan = deal(len(lengths), ga_steps=ga_steps, world_size=world_size, dealing=dealing)
    split = {
        "ga_steps": ga_steps,
        "world_size": world_size,
        "dealing": dealing,
        "reduction": red.name,
        **params,
    }
    intended = weights(counts, red.name, **params).sum(1) * scale
    cols = {
        n: accumulation_weights(counts, normalize=n, **split).sum(1)
        * (1.0 if n == "sum" else scale)
        for n in AUDIT_COLUMNS
    }
    ratio = cols["naive"] / intended
    return {
        "plan": plan,
        "rank_mb": [list(pk) for pk in locate(plan)],
        "intended": intended.tolist(),
        **{n: c.tolist() for n, c in cols.items()},
        "ratio": ratio.tolist(),
        "worst_up": float(ratio.max()),
        "worst_down": float(ratio.min()),
    }


def fix_lines(table: dict, *, ga_steps: int, world_size: int, reduction: str) -> list[str]:
    """What the table means in words: no fix needed, a uniform scale, or which fix applies."""
    up, down = table["worst_up"], table["worst_down"]
    if max(up, 1 / down) < 1 + 1e-6:
        return [
            "No fix needed here: every micro-batch holds the same count, so naive accumulation "
            "already equals the full batch."
        ]
    if up / down < 1 + 1e-6:
        return [
            f"Every sample is scaled by the same {up:.4g}: the gradient's direction is "
            "right, only its size changes (as a different learning rate would)."
        ]
    lines = ["Fix: normalize by the count of the whole step (the 'global' column):"]
    name = resolve_reduction(reduction).name
    if name == "token_mean":
        if ga_steps > 1:
            lines.append("  - " + FIXES["ga"])
        if world_size > 1:
            lines.append("  - " + FIXES["dp"])
    elif name == "sample_mean":
        lines.append(
            "  - divide by the number of samples in the whole step, all-reduced over ranks"
        )
    lines.append("  - " + FIXES["manual"])
    return lines
