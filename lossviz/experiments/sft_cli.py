"""Train the tiny causal LM on a reverse-the-list chat task under several loss reductions ("arms")
and compare held-out loss and exact-match accuracy per answer-length bucket.

Without options it runs the notebook's default configuration (every arm, 3 seeds, a few seconds per
run) and prints a table. --out PATH writes the results as JSON (checked before training starts);
notebook 10 reads the copy in lossviz/data/experiment_results.json, which `python -m lossviz
experiment --out lossviz/data/experiment_results.json` rewrites from scratch. Bigger runs: --steps,
--seeds, --arms, --d-model, --n-layers.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from dataclasses import fields, replace

from ..checks import arg_type, int_arg, parse_list, positive_float_arg
from .results import check_writable, fallback_path, save_results
from .sft_results import default_config, format_table
from .sft_training import ARMS, ExperimentConfig, run_experiment
from .tasks import OPS, TaskConfig

__all__ = ["add_arguments", "config_from_args", "run", "seed_list"]


def seed_list(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``: distinct non-negative seeds (``ValueError`` otherwise)."""
    seeds = tuple(parse_list(text, "seed", low=0, example="0,1,2"))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct: {text!r}")
    return seeds


def _arm_list(text: str) -> tuple[str, ...]:
    arms = tuple(parse_list(text, "arm", kind=str, example="token_mean,sample_mean"))
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    return arms


def _op_list(text: str) -> tuple[str, ...]:
    try:
        ops = tuple(parse_list(text, "task", kind=str, example="reverse,copy"))
    except ValueError:
        ops = ()
    if not ops or any(o not in OPS for o in ops) or len(set(ops)) != len(ops):
        raise ValueError(f"expected distinct tasks from {', '.join(sorted(OPS))}, got {text!r}")
    return ops


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m lossviz experiment`` (defaults: the notebook's configuration)."""
    d = default_config()
    arms_help = "; ".join(f"{a.name}: {a.label}" for a in ARMS.values())
    parser.add_argument(
        "--arms",
        type=arg_type(_arm_list),
        default=d.arms,
        help=f"comma-separated arms to train (default: all). {arms_help}",
    )
    parser.add_argument(
        "--seeds",
        type=arg_type(seed_list),
        default=d.seeds,
        help="comma-separated seeds; a seed fixes the initial weights and the data order, "
        f"shared by every arm (default: {','.join(map(str, d.seeds))})",
    )
    opts = [
        ("--steps", int, "optimizer steps per run"),
        ("--batch-size", int, "examples per optimizer step"),
        ("--micro-batches", int, "micro-batches G of the gradient-accumulation arms"),
        (
            "--lr",
            positive_float_arg,
            "AdamW learning rate (the `sum` arm divides it by the "
            "typical number of trained tokens per batch)",
        ),
        ("--d-model", int, "model width"),
        ("--n-layers", int, "transformer blocks"),
        ("--n-heads", int, "attention heads (must divide --d-model)"),
        ("--eval-per-bucket", int, "held-out examples per answer-length bucket"),
        ("--eval-every", int, "steps between held-out loss measurements"),
        ("--threads", int, "torch threads (numbers can depend on it; keep 1 to compare)"),
    ]
    for flag, kind, text in opts:
        name = flag[2:].replace("-", "_")
        parser.add_argument(
            flag,
            type=int_arg(flag) if kind is int else kind,
            default=getattr(d, name),
            help=f"{text} (default: {getattr(d, name)})",
        )
    parser.add_argument(
        "--ops",
        type=arg_type(_op_list),
        default=d.task.ops,
        help="comma-separated tasks the examples are drawn from: reverse, copy "
        f"(default: {','.join(d.task.ops)}; copy needs more steps to learn)",
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="write the results as JSON here (lossviz/data/experiment_results.json is the "
        "notebook's cache); without it only the table is printed",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bar")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The :class:`ExperimentConfig` that parsed options describe (``ValueError`` if inconsistent)."""
    names = {f.name for f in fields(ExperimentConfig)} - {"task", "vocab_size"}
    kwargs = {n: getattr(args, n) for n in names if hasattr(args, n)}
    if getattr(args, "ops", None) is not None:
        kwargs["task"] = replace(TaskConfig(), ops=tuple(args.ops))
    return ExperimentConfig(**kwargs)


def run(args: argparse.Namespace) -> int:
    """Train, print the accuracy and loss tables, optionally write the JSON; returns the exit status."""
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        print(f"lossviz experiment: error: {err}", file=sys.stderr)
        return 2
    if args.out is not None:
        try:
            check_writable(args.out)
        except OSError as err:
            print(f"lossviz experiment: error: --out {err}", file=sys.stderr)
            return 2
    progress = not args.no_progress and sys.stderr.isatty()
    results = run_experiment(cfg, progress=progress)
    print(format_table(results, "accuracy"))
    print()
    print(format_table(results, "loss"))
    print(
        f"\n{len(results['runs'])} runs trained in {results['seconds']} s wall clock, "
        f"{results['cpu_seconds']} s of CPU time ({cfg.threads} thread(s))"
    )
    if args.out is not None:
        try:
            print(f"wrote {save_results(results, args.out)}")
        except OSError as err:  # the path changed while training: keep the finished runs anyway
            fallback = save_results(results, fallback_path())
            print(
                f"lossviz experiment: error: could not write {args.out} ({err}); the results "
                f"are in {fallback}",
                file=sys.stderr,
            )
            return 1
    return 0
