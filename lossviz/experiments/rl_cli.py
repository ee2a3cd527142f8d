"""RL-train the tiny policy on the reverse task under GRPO's, DAPO's and Dr. GRPO's loss aggregation,
and compare reward and the length of correct and incorrect responses per arm.

Without options it runs notebook 14's default configuration (4 arms, 6 seeds) and prints a table of
the last steps' averages and a paired comparison with GRPO. --out PATH writes the results as JSON
(checked before training starts); the notebook reads lossviz/data/rl_experiment_results.json, which
`python -m lossviz rl-experiment --out lossviz/data/rl_experiment_results.json` rewrites.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from dataclasses import fields, replace

from ..checks import arg_type, int_arg, parse_list, positive_float_arg
from .results import check_writable, fallback_path, save_results
from .rl_results import WINDOW, format_rl_table, paired_rl
from .rl_training import RL_ARMS, RL_TASK, RLConfig, run_rl_experiment
from .sft_cli import seed_list

__all__ = ["add_arguments", "config_from_args", "run"]


def _arm_list(text: str) -> tuple[str, ...]:
    arms = tuple(parse_list(text, "arm", kind=str, example="grpo,dr_grpo"))
    unknown = [a for a in arms if a not in RL_ARMS]
    if unknown or len(set(arms)) != len(arms):
        raise ValueError(
            f"unknown or repeated arm(s) {unknown or text!r}; choose from {', '.join(RL_ARMS)}"
        )
    return arms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m lossviz rl-experiment`` (defaults: notebook 14's configuration)."""
    d = RLConfig()
    arms_help = "; ".join(f"{a.name}: {a.label}" for a in RL_ARMS.values())
    parser.add_argument(
        "--arms",
        type=arg_type(_arm_list),
        default=d.arms,
        help=f"comma-separated arms (default: {','.join(d.arms)}). {arms_help}",
    )
    parser.add_argument(
        "--seeds",
        type=arg_type(seed_list),
        default=d.seeds,
        help="comma-separated seeds; a seed fixes the initial weights, the warm-up data, the "
        f"prompts and the sampler's numbers, shared by every arm (default: {','.join(map(str, d.seeds))})",
    )
    opts = [
        ("--steps", int_arg("--steps"), "RL steps per run (each samples a new batch)"),
        ("--prompts", int_arg("--prompts"), "prompts per step"),
        ("--group", int_arg("--group"), "responses G sampled per prompt (at least 2)"),
        (
            "--max-new",
            int_arg("--max-new"),
            "length limit C of a response in tokens (Dr. GRPO's constant)",
        ),
        (
            "--inner-steps",
            int_arg("--inner-steps"),
            "optimizer steps per sampled batch (clipping acts from the 2nd)",
        ),
        ("--lr", positive_float_arg, "AdamW learning rate of the RL steps"),
        (
            "--warmup-steps",
            int_arg("--warmup-steps", low=0),
            "supervised warm-up steps before RL (0: none)",
        ),
        (
            "--threads",
            int_arg("--threads"),
            "torch threads (numbers can depend on it; keep 1 to compare)",
        ),
    ]
    for flag, kind, text in opts:
        name = flag[2:].replace("-", "_")
        parser.add_argument(
            flag, type=kind, default=getattr(d, name), help=f"{text} (default: {getattr(d, name)})"
        )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="write the results as JSON here (checked before training; "
        "lossviz/data/rl_experiment_results.json is the notebook's cache)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bar")


def config_from_args(args: argparse.Namespace) -> RLConfig:
    """The :class:`RLConfig` that parsed options describe (``ValueError`` if inconsistent)."""
    names = {f.name for f in fields(RLConfig)} - {"task"}
    return replace(
        RLConfig(task=RL_TASK), **{n: getattr(args, n) for n in names if hasattr(args, n)}
    )


def run(args: argparse.Namespace) -> int:
    """Check --out, train, print the tables, write the JSON; returns the exit status."""
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        print(f"lossviz rl-experiment: error: {err}", file=sys.stderr)
        return 2
    if args.out is not None:
        try:
            check_writable(args.out)
        except OSError as err:
            print(f"lossviz rl-experiment: error: --out {err}", file=sys.stderr)
            return 2
    progress = not args.no_progress and sys.stderr.isatty()
    results = run_rl_experiment(cfg, progress=progress)
    print(format_rl_table(results, min(WINDOW, cfg.steps)))
    print()
    for arm in cfg.arms:
        if arm != "grpo" and "grpo" in cfg.arms:
            t = paired_rl(results, arm, "grpo", "excess_incorrect", min(WINDOW, cfg.steps))
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
    if args.out is not None:
        try:
            print(f"wrote {save_results(results, args.out)}")
        except OSError as err:  # the path was fine before training: keep the runs anyway
            fallback = fallback_path("lossviz-rl-experiment-")
            print(f"lossviz rl-experiment: could not write {args.out} ({err})", file=sys.stderr)
            print(f"wrote {save_results(results, fallback)} instead")
            return 1
    return 0
