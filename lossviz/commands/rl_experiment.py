"""RL-train the tiny policy on the reverse task under GRPO's, DAPO's and Dr. GRPO's loss aggregation,
and compare reward and the length of correct and incorrect responses per arm.

Without options it runs notebook 14's default configuration (4 arms, 6 seeds) and prints a table of
the last steps' averages and a paired comparison with GRPO. --out PATH writes the results as JSON
(checked before training starts); the notebook reads lossviz/data/rl_experiment_results.json, which
`python -m lossviz rl-experiment --out lossviz/data/rl_experiment_results.json` rewrites.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace

from ..checks import int_arg, positive_float_arg
from ..experiments.rl_results import WINDOW, format_rl_table, paired_rl
from ..experiments.rl_training import RL_ARMS, RL_TASK, RLConfig, run_rl_experiment
from .experiment_options import (
    add_arm_options,
    add_number_options,
    add_output_options,
    checked_config,
    write_results,
)

__all__ = ["add_arguments", "config_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m lossviz rl-experiment`` (defaults: notebook 14's configuration)."""
    d = RLConfig()
    add_arm_options(
        parser,
        RL_ARMS,
        default_arms=d.arms,
        default_seeds=d.seeds,
        seeds_help="a seed fixes the initial weights, the warm-up data, the prompts and the "
        "sampler's numbers, shared by every arm",
    )
    add_number_options(
        parser,
        d,
        [
            ("--steps", int, "RL steps per run (each samples a new batch)"),
            ("--prompts", int, "prompts per step"),
            ("--group", int, "responses G sampled per prompt (at least 2)"),
            ("--max-new", int, "length limit C of a response in tokens (Dr. GRPO's constant)"),
            (
                "--inner-steps",
                int,
                "optimizer steps per sampled batch (clipping acts from the 2nd)",
            ),
            ("--lr", positive_float_arg, "AdamW learning rate of the RL steps"),
            (
                "--warmup-steps",
                int_arg("--warmup-steps", low=0),
                "supervised warm-up steps before RL (0: none)",
            ),
            ("--threads", int, "torch threads (numbers can depend on it; keep 1 to compare)"),
        ],
    )
    add_output_options(parser, "rl_experiment_results.json")


def config_from_args(args: argparse.Namespace) -> RLConfig:
    """The :class:`RLConfig` that parsed options describe (``ValueError`` if inconsistent)."""
    names = {f.name for f in fields(RLConfig)} - {"task"}
    return replace(
        RLConfig(task=RL_TASK), **{n: getattr(args, n) for n in names if hasattr(args, n)}
    )


def run(args: argparse.Namespace) -> int:
    """Check --out, train, print the tables, write the JSON; returns the exit status."""
    cfg = checked_config(args, "rl-experiment", lambda: config_from_args(args))
    if cfg is None:
        return 2
    results = run_rl_experiment(cfg, progress=not args.no_progress and sys.stderr.isatty())
    window = min(WINDOW, cfg.steps)
    print(format_rl_table(results, window))
    print()
    for arm in cfg.arms:
        if arm != "grpo" and "grpo" in cfg.arms:
            t = paired_rl(results, arm, "grpo", "excess_incorrect", window)
            if t["mean"] is None:
                continue
            print(
                f"{arm:12s} excess length of incorrect responses minus GRPO's: mean {t['mean']:+.3f}, "
                f"lower in {t['lower']}, higher in {t['higher']} seeds, sign test p = {t['p']:.3f}"
            )
    print(
        f"\n{len(results['runs'])} runs in {results['seconds']} s wall clock, "
        f"{results['cpu_seconds']} s of CPU time ({cfg.threads} thread(s))"
    )
    return write_results(results, args.out, "rl-experiment")
