"""RL-train the tiny policy on the reverse task under GRPO's, DAPO's and Dr. GRPO's loss aggregation,
and compare reward and the length of correct and incorrect responses per arm.

Without options it runs notebook 14's default configuration (4 arms, 6 seeds) and prints a table of
the last steps' averages and a paired comparison with GRPO. --out PATH writes the results as JSON
(checked before training starts); the notebook reads lossviz/data/rl_experiment_results.json, which
`python -m lossviz rl-experiment --out lossviz/data/rl_experiment_results.json` rewrites.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path

from .checks import arg_type, parse_int, parse_list
from .experiment import _positive_float, _positive_int, _seed_list, save_results, sign_test
from .rl_training import METRICS, RL_ARMS, RL_TASK, RLConfig, run_rl_experiment
from .tasks import Bucket, TaskConfig

__all__ = [
    "DEFAULT_RL_CACHE",
    "load_rl_results",
    "rl_config_of",
    "curve",
    "window_mean",
    "late_values",
    "summarize_rl",
    "format_rl_table",
    "paired_rl",
    "check_out_path",
    "add_arguments",
    "run",
]

DEFAULT_RL_CACHE = Path(__file__).parent / "data" / "rl_experiment_results.json"
WINDOW = 20  # "late" = the mean over the last WINDOW steps


def load_rl_results(path: str | Path | None = None) -> dict:
    """Read cached RL results (default: the copy shipped in the package)."""
    path = Path(path) if path is not None else DEFAULT_RL_CACHE
    if not path.is_file():
        raise FileNotFoundError(
            f"no results at {path}; create them with `python -m lossviz rl-experiment --out {path}`"
        )
    return json.loads(path.read_text())


def rl_config_of(results: dict) -> RLConfig:
    """The :class:`RLConfig` stored in ``results`` (lists back to tuples)."""
    stored = dict(results["config"])
    task = dict(stored.pop("task"))
    buckets = tuple(
        Bucket(b["name"], tuple(b["answer"]), tuple(b["context"]), b["share"])
        for b in task.pop("buckets")
    )
    task = TaskConfig(buckets=buckets, vocab_size=task["vocab_size"], ops=tuple(task["ops"]))
    return RLConfig(
        task=task, **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
    )


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def curve(results: dict, arm: str, seed: int, metric: str) -> list[float | None]:
    """Per-step ``metric`` of one run (None where a step had no such response)."""
    _check_metric(metric)
    for r in results["runs"]:
        if r["arm"] == arm and r["seed"] == seed:
            return r["curves"][metric]
    raise ValueError(f"no run of arm {arm!r} with seed {seed} in these results")


def window_mean(values: list[float | None], start: int, stop: int) -> float | None:
    """Mean of ``values[start:stop]`` ignoring None; None if nothing is left."""
    kept = [v for v in values[start:stop] if v is not None]
    return statistics.fmean(kept) if kept else None


def late_values(results: dict, arm: str, metric: str, window: int = WINDOW) -> dict[int, float]:
    """Seed -> mean of ``metric`` over the last ``window`` steps of that arm's run (seeds whose
    window holds no such response, e.g. no incorrect one, are left out)."""
    _check_metric(metric)
    out = {}
    for r in results["runs"]:
        if r["arm"] == arm:
            v = window_mean(r["curves"][metric], -window, None)
            if v is not None:
                out[r["seed"]] = v
    return out


def summarize_rl(results: dict, window: int = WINDOW) -> list[dict]:
    """One row per arm: each metric's late mean as mean, std, min, max over seeds (None: no values)."""
    rows = []
    for arm in results["config"]["arms"]:
        row = {"arm": arm}
        for metric in METRICS:
            v = list(late_values(results, arm, metric, window).values())
            row[metric] = (
                None
                if not v
                else {
                    "mean": statistics.fmean(v),
                    "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                    "min": min(v),
                    "max": max(v),
                }
            )
        rows.append(row)
    return rows


def format_rl_table(results: dict, window: int = WINDOW) -> str:
    """Arms x metrics: mean ± std over seeds of each metric's mean over the last ``window`` steps."""
    rows = summarize_rl(results, window)
    width = max(len(a) for a in results["config"]["arms"]) + 2
    head = f"last {window} steps".ljust(width) + "".join(f"{m:>18}" for m in METRICS)
    lines = [head]
    for row in rows:
        cells = "".join(
            f"{'n/a':>18}" if row[m] is None else f"{row[m]['mean']:>10.3f} ± {row[m]['std']:.3f}"
            for m in METRICS
        )
        lines.append(row["arm"].ljust(width) + cells)
    return "\n".join(lines)


def paired_rl(
    results: dict,
    arm: str,
    reference: str = "grpo",
    metric: str = "excess_incorrect",
    window: int = WINDOW,
) -> dict:
    """Per seed ``late(arm) - late(reference)`` of ``metric``; their mean, signs and sign-test p.

    Seeds where either arm has no value in the window are left out (mean None if none is left).
    """
    for name in (arm, reference):
        if name not in results["arms"]:
            raise ValueError(f"arm {name!r} is not in these results: {list(results['arms'])}")
    a = late_values(results, arm, metric, window)
    b = late_values(results, reference, metric, window)
    d = {s: round(a[s] - b[s], 4) for s in sorted(a) if s in b}
    return {
        "differences": d,
        "mean": round(statistics.fmean(d.values()), 4) if d else None,
        "lower": sum(x < 0 for x in d.values()),
        "higher": sum(x > 0 for x in d.values()),
        "p": sign_test(list(d.values())),
    }


def check_out_path(path: Path) -> str | None:
    """Why ``path`` cannot take the results (None if it can): checked before hours of training."""
    if path.exists() and path.is_dir():
        return f"--out {path} is a folder; give a file name such as {path / 'rl.json'}"
    parent = path.parent if str(path.parent) else Path(".")
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"--out {path}: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"--out {path} is not writable; choose another path"
    return None


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
        type=arg_type(_seed_list),
        default=d.seeds,
        help="comma-separated seeds; a seed fixes the initial weights, the warm-up data, the "
        f"prompts and the sampler's numbers, shared by every arm (default: {','.join(map(str, d.seeds))})",
    )
    opts = [
        ("--steps", _positive_int("--steps"), "RL steps per run (each samples a new batch)"),
        ("--prompts", _positive_int("--prompts"), "prompts per step"),
        ("--group", _positive_int("--group"), "responses G sampled per prompt (at least 2)"),
        (
            "--max-new",
            _positive_int("--max-new"),
            "length limit C of a response in tokens (Dr. GRPO's constant)",
        ),
        (
            "--inner-steps",
            _positive_int("--inner-steps"),
            "optimizer steps per sampled batch (clipping acts from the 2nd)",
        ),
        ("--lr", _positive_float, "AdamW learning rate of the RL steps"),
        (
            "--warmup-steps",
            arg_type(lambda t: parse_int(t, "--warmup-steps", low=0)),
            "supervised warm-up steps before RL (0: none)",
        ),
        (
            "--threads",
            _positive_int("--threads"),
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
        type=Path,
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
    if args.out is not None and (problem := check_out_path(args.out)):
        print(f"lossviz rl-experiment: error: {problem}", file=sys.stderr)
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
            fallback = Path(tempfile.mkdtemp(prefix="lossviz-rl-")) / args.out.name
            print(f"lossviz rl-experiment: could not write {args.out} ({err})", file=sys.stderr)
            print(f"wrote {save_results(results, fallback)} instead")
            return 1
    return 0
