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
import sys
from dataclasses import fields, replace

from ..checks import arg_type, parse_list, positive_float_arg
from ..experiments.sft_results import default_config, format_table
from ..experiments.sft_training import ARMS, ExperimentConfig, run_experiment
from ..experiments.tasks import OPS, TaskConfig
from .experiment_options import (
    add_arm_options,
    add_number_options,
    add_output_options,
    checked_config,
    write_results,
)

__all__ = ["add_arguments", "config_from_args", "run"]


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
    add_arm_options(
        parser,
        ARMS,
        default_arms=d.arms,
        default_seeds=d.seeds,
        seeds_help="a seed fixes the initial weights and the data order, shared by every arm",
    )
    add_number_options(
        parser,
        d,
        [
            ("--steps", int, "optimizer steps per run"),
            ("--batch-size", int, "examples per optimizer step"),
            ("--ga-steps", int, "gradient-accumulation steps K (micro-batches) of the GA arms"),
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
        ],
    )
    parser.add_argument(
        "--ops",
        type=arg_type(_op_list),
        default=d.task.ops,
        help="comma-separated tasks the examples are drawn from: reverse, copy "
        f"(default: {','.join(d.task.ops)}; copy needs more steps to learn)",
    )
    add_output_options(parser, "experiment_results.json")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The :class:`ExperimentConfig` that parsed options describe (``ValueError`` if inconsistent)."""
    names = {f.name for f in fields(ExperimentConfig)} - {"task", "vocab_size"}
    kwargs = {n: getattr(args, n) for n in names if hasattr(args, n)}
    if getattr(args, "ops", None) is not None:
        kwargs["task"] = replace(TaskConfig(), ops=tuple(args.ops))
    return ExperimentConfig(**kwargs)


def run(args: argparse.Namespace) -> int:
    """Train, print the accuracy and loss tables, optionally write the JSON; returns the exit status."""
    cfg = checked_config(args, "experiment", lambda: config_from_args(args))
    if cfg is None:
        return 2
    results = run_experiment(cfg, progress=not args.no_progress and sys.stderr.isatty())
    print(format_table(results, "accuracy"))
    print()
    print(format_table(results, "loss"))
    print(
        f"\n{len(results['runs'])} runs trained in {results['seconds']} s wall clock, "
        f"{results['cpu_seconds']} s of CPU time ({cfg.threads} thread(s))"
    )
    return write_results(results, args.out, "experiment")
