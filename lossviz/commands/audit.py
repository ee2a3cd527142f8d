"""Audit a gradient-accumulation / data-parallel setup: what each sample really weighs in one step.

One optimizer step takes per_device_batch_size x ga_steps x world_size samples, so --lengths must
give exactly that many. They are dealt as the transformers Trainer (accelerate) deals them: whole
batches of per_device_batch_size consecutive samples, batch j to rank j % world_size (--dealing
sampler: sample i to rank i % world_size, as DistributedSampler deals them). For each sample the
audit prints the intended full-batch weight and the effective weight under naive accumulation (each
micro-batch normalized alone, as transformers < 4.46 did), under global normalization (the fix),
and under a summed loss (open-instruct reduce_loss=sum), with the worst distortion ratio and which
fix applies (the math: lossviz.step_audit).
Example: lossviz audit --lengths 12,40,7,300 --per-device-batch-size 1 --ga-steps 4
"""

from __future__ import annotations

import argparse
import json
import sys

from ..checks import arg_type, int_arg, parse_list
from ..reductions import REDUCTIONS, resolve_reduction
from ..step_audit import audit_table, fix_lines
from ..step_shape import DEALINGS

__all__ = ["add_arguments", "add_step_options", "run"]


def _reduction(text: str) -> str:
    return resolve_reduction(
        text
    ).name  # aliases (mean = token_mean) accepted, as lv.weights accepts them


def add_step_options(
    parser: argparse.ArgumentParser,
    *,
    lengths_help: str,
    world_help: str,
    batch_flag: str = "--per-device-batch-size",
) -> None:
    """``--lengths``, ``--per-device-batch-size``, ``--ga-steps`` and ``--world-size``: one
    optimizer step's shape, as ``lossviz audit`` and ``lossviz probe`` take it (``--micro-batch-size``
    is still read as the per-device batch size)."""
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
    parser.add_argument(
        "--micro-batch-size",
        dest="per_device_batch_size",
        type=int_arg("--micro-batch-size"),
        help=argparse.SUPPRESS,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lossviz audit``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_step_options(
        parser,
        lengths_help="trained (label != -100) tokens of each sample in one optimizer step, "
        "comma-separated, in data-loader order, e.g. 12,40,7,300; exactly "
        "per_device_batch_size x ga_steps x world_size of them",
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
    parser.add_argument(
        "--dealing",
        choices=DEALINGS,
        default="trainer",
        help="how the step's samples reach ranks and micro-batches: trainer (the transformers "
        "Trainer through accelerate: whole batches of per-device-batch-size consecutive samples, "
        "batch j to rank j %% world-size) or sampler (DistributedSampler: sample i to rank "
        "i %% world-size, then consecutive micro-batches); default trainer",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the audit as JSON instead of a table"
    )


def run(args: argparse.Namespace) -> int:
    """Print the audit; 0 on success, 2 (with a message on stderr) on an impossible setup."""
    B, K, R = args.per_device_batch_size, args.ga_steps, args.world_size
    try:
        t = audit_table(
            args.lengths,
            per_device_batch_size=B,
            ga_steps=K,
            world_size=R,
            reduction=args.reduction,
            dealing=args.dealing,
        )
    except ValueError as err:
        print(f"lossviz audit: error: {err}", file=sys.stderr)
        return 2
    fixes = fix_lines(t, ga_steps=K, world_size=R, reduction=args.reduction)
    if args.json:
        setup = {"lengths": args.lengths, "per_device_batch_size": B, "ga_steps": K}
        setup |= {"world_size": R, "dealing": args.dealing, "reduction": args.reduction}
        print(json.dumps({**setup, **t, "fix": fixes}, indent=1))
        return 0
    print(
        f"{len(args.lengths)} samples = per_device_batch_size {B} x ga_steps {K} x world_size "
        f"{R}, dealt as the {'Trainer' if args.dealing == 'trainer' else 'DistributedSampler'} "
        f"deals them; intended loss: {args.reduction} over the whole step"
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
    for line in fixes:
        print(line)
    return 0
