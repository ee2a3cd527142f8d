"""Audit a gradient-accumulation / data-parallel setup: what each sample really weighs in one step.

One optimizer step takes micro_batch_size x ga_steps x world_size samples, so --lengths must give
exactly that many (sample i goes to rank i % world_size, then into that rank's consecutive
micro-batches). For each sample the audit prints the intended full-batch weight and the effective
weight under naive accumulation (each micro-batch normalized alone, as transformers < 4.46 did),
under global normalization (the fix), and under a summed loss (open-instruct reduce_loss=sum), with
the worst distortion ratio and which fix applies.
Example: lossviz audit --lengths 12,40,7,300 --micro-batch-size 1 --ga-steps 4
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..accumulation import accumulation_weights, split_batch
from ..checks import arg_type, int_arg, parse_list
from ..reductions import REDUCTIONS, resolve_reduction, weights

__all__ = ["add_arguments", "run", "audit_table", "FIXES"]

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


def _reduction(text: str) -> str:
    return resolve_reduction(
        text
    ).name  # aliases (mean = token_mean) accepted, as lv.weights accepts them


def add_step_options(
    parser: argparse.ArgumentParser, *, batch_flag: str, lengths_help: str, world_help: str
) -> None:
    """``--lengths``, the batch size (``batch_flag``), ``--ga-steps`` and ``--world-size``: one
    optimizer step's shape, as ``lossviz audit`` and ``lossviz probe`` take it."""
    parser.add_argument(
        "--lengths",
        type=arg_type(lambda text: parse_list(text, "length", low=1, example="12,40,7,300")),
        required=True,
        help=lengths_help,
    )
    for flag, text in [
        (batch_flag, "samples per forward pass on one rank (per_device_train_batch_size)"),
        (
            "--ga-steps",
            "micro-batches accumulated per optimizer step (gradient_accumulation_steps)",
        ),
        ("--world-size", None),
    ]:
        parser.add_argument(
            flag,
            type=int_arg(flag),
            default=1,
            help=world_help if text is None else f"{text}; default 1",
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lossviz audit``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_step_options(
        parser,
        batch_flag="--micro-batch-size",
        lengths_help="trained (label != -100) tokens of each sample in one optimizer step, "
        "comma-separated, in data-loader order, e.g. 12,40,7,300; exactly micro-batch-size x "
        "ga-steps x world-size of them",
        world_help="data-parallel ranks (GPUs) whose gradients DDP averages; default 1",
    )
    parser.add_argument(
        "--reduction",
        type=arg_type(_reduction),
        default="token_mean",
        help="the loss you intend over the whole step: token_mean (sum of token losses / all "
        "trained tokens, what reduction='mean' means; alias mean) or another lossviz reduction: "
        + ", ".join(REDUCTIONS)
        + "; default token_mean",
    )


def audit_table(
    lengths: list[int], micro_batch_size: int, ga_steps: int, world_size: int, reduction: str
) -> dict:
    """Per-sample weights (shares of the step) under full batch, naive, global and sum, plus ratios."""
    need = micro_batch_size * ga_steps * world_size
    if len(lengths) != need:
        raise ValueError(
            f"one optimizer step takes micro-batch-size x ga-steps x world-size = "
            f"{micro_batch_size} x {ga_steps} x {world_size} = {need} samples, but --lengths gave "
            f"{len(lengths)}; give {need} lengths or change the sizes"
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
    plan = split_batch(len(lengths), micro_batches=ga_steps, world_size=world_size)
    where = {i: (r, k) for r, rank in enumerate(plan) for k, mb in enumerate(rank) for i in mb}
    split = {"micro_batches": ga_steps, "world_size": world_size, "reduction": reduction, **params}
    intended = weights(counts, reduction, **params).sum(1) * scale
    cols = {
        n: accumulation_weights(counts, normalize=n, **split).sum(1) * scale
        for n in ("naive", "global")
    }
    cols["sum"] = accumulation_weights(counts, normalize="sum", **split).sum(1)
    ratio = cols["naive"] / intended
    return {
        "rank_mb": [where[i] for i in range(len(lengths))],
        "intended": intended.tolist(),
        "naive": cols["naive"].tolist(),
        "global": cols["global"].tolist(),
        "sum": cols["sum"].tolist(),
        "ratio": ratio.tolist(),
        "worst_up": float(ratio.max()),
        "worst_down": float(ratio.min()),
    }


def _fix_lines(t: dict, ga_steps: int, world_size: int, reduction: str) -> list[str]:
    if max(t["worst_up"], 1 / t["worst_down"]) < 1 + 1e-6:
        return [
            "No fix needed here: every micro-batch holds the same count, so naive accumulation "
            "already equals the full batch."
        ]
    if t["worst_up"] / t["worst_down"] < 1 + 1e-6:
        return [
            f"Every sample is scaled by the same {t['worst_up']:.4g}: the gradient's direction is "
            "right, only its size changes (as a different learning rate would)."
        ]
    lines = ["Fix: normalize by the count of the whole step (the 'global' column):"]
    if reduction in ("token_mean", "mean", "weighted"):
        if ga_steps > 1:
            lines.append("  - " + FIXES["ga"])
        if world_size > 1:
            lines.append("  - " + FIXES["dp"])
    elif reduction == "sample_mean":
        lines.append(
            "  - divide by the number of samples in the whole step, all-reduced over ranks"
        )
    lines.append("  - " + FIXES["manual"])
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the audit; 0 on success, 2 (with a message on stderr) on an impossible setup."""
    try:
        t = audit_table(
            args.lengths, args.micro_batch_size, args.ga_steps, args.world_size, args.reduction
        )
    except ValueError as err:
        print(f"lossviz audit: error: {err}", file=sys.stderr)
        return 2
    print(
        f"{len(args.lengths)} samples = micro-batch-size {args.micro_batch_size} x ga-steps "
        f"{args.ga_steps} x world-size {args.world_size}; intended loss: {args.reduction} over "
        "the whole step"
    )
    print(
        "Weight of each sample in the step's loss, sum_t W[b, t] (for a mean: shares summing to 1)"
    )
    head = f"{'sample':>6} {'tokens':>6} {'rank':>4} {'mb':>3} {'full batch':>10} "
    print(head + f"{'naive':>8} {'global':>8} {'sum':>8} {'naive/full':>10}")
    for i, n in enumerate(args.lengths):
        r, k = t["rank_mb"][i]
        print(
            f"{i:>6} {n:>6} {r:>4} {k:>3} {t['intended'][i]:>10.4f} {t['naive'][i]:>8.4f} "
            f"{t['global'][i]:>8.4f} {t['sum'][i]:>8.2f} {t['ratio'][i]:>10.3f}"
        )
    up, down = t["worst_up"], t["worst_down"]
    print(
        f"Worst distortion under naive accumulation: a sample weighs {up:.3f}x its intended "
        f"weight (up) and {down:.3f}x (down); max/min = {up / down:.3f}"
    )
    print("'sum' is not normalized: its scale grows with the token count (learning rate coupling).")
    for line in _fix_lines(t, args.ga_steps, args.world_size, args.reduction):
        print(line)
    return 0
