"""Train the tiny causal LM on a reverse-the-list chat task under several loss reductions ("arms")
and compare held-out loss and exact-match accuracy per answer-length bucket.

Without options it runs the notebook's default configuration (every arm, 3 seeds, a few seconds per
run) and prints a table. --out PATH writes the results as JSON; the notebook reads the copy in
lossviz/data/experiment_results.json, which `python -m lossviz experiment --out
lossviz/data/experiment_results.json` rewrites from scratch. Bigger runs: --steps, --seeds,
--arms, --d-model, --n-layers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path

from .checks import arg_type, parse_int, parse_list
from .tasks import OPS, Bucket, TaskConfig
from .training import ARMS, ExperimentConfig, _threads, run_experiment, train_arm

__all__ = [
    "DEFAULT_CACHE",
    "default_config",
    "load_results",
    "save_results",
    "summarize",
    "format_table",
    "config_of",
    "config_from_args",
    "RETRAIN_TOLERANCE",
    "retrain",
    "retrain_gaps",
    "within_retrain_tolerance",
    "final_values",
    "paired_differences",
    "paired_summary",
    "sign_test",
    "add_arguments",
    "check_writable",
    "run",
]

DEFAULT_CACHE = Path(__file__).parent / "data" / "experiment_results.json"


def default_config() -> ExperimentConfig:
    """The configuration the notebook's cached results were produced with."""
    return ExperimentConfig()


def load_results(path: str | Path | None = None) -> dict:
    """Read cached results (default: the copy shipped in the package)."""
    path = Path(path) if path is not None else DEFAULT_CACHE
    if not path.is_file():
        raise FileNotFoundError(
            f"no results at {path}; create them with `python -m lossviz experiment --out {path}`"
        )
    return json.loads(path.read_text())


def config_of(results: dict) -> ExperimentConfig:
    """The :class:`ExperimentConfig` stored in ``results`` (lists back to tuples)."""
    stored = dict(results["config"])
    task = dict(stored.pop("task"))
    buckets = tuple(
        Bucket(b["name"], tuple(b["answer"]), tuple(b["context"]), b["share"])
        for b in task.pop("buckets")
    )
    task = TaskConfig(
        buckets=buckets, **{k: tuple(v) if isinstance(v, list) else v for k, v in task.items()}
    )
    return ExperimentConfig(
        task=task, **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
    )


# How far a re-trained run may sit from the cached one. Training is deterministic on one CPU, but the
# kernels torch picks (AVX-512, AVX2, none) round differently, and 80 steps amplify that. Measured on
# 2026-11-30, all 21 default runs re-trained under ATEN_CPU_CAPABILITY=default, avx2 and AVX-512, each
# against the cache and against each other: the first 20 training losses equal to the stored 4
# decimals (rounding of the stored value allows 1e-4), steps 20-39 within 1e-4, every training loss
# within 0.0066, every held-out loss within 0.0061, accuracy within one example of 64 (0.0156).
# Each tolerance is five to ten times its measured spread; a changed reduction moves the first
# steps by 1e-2 or more (sample mean vs token mean: 0.03 at step 2).
RETRAIN_TOLERANCE = {
    "train_loss_first_20": 2e-4,
    "train_loss_first_40": 1e-3,
    "train_loss": 0.03,
    "eval_loss": 0.03,
    "accuracy": 3 / 64,
}


def retrain(results: dict, arm: str, seed: int) -> tuple[dict, dict]:
    """Train ``arm`` from ``seed`` again under ``results``' config: ``(fresh run, cached run)``."""
    cached = [r for r in results["runs"] if (r["arm"], r["seed"]) == (arm, seed)]
    if not cached:
        raise ValueError(f"no cached run of arm {arm!r} with seed {seed}")
    cfg = config_of(results)
    with _threads(cfg.threads):
        fresh = train_arm(ARMS[arm], seed, cfg)
    return fresh, cached[0]


def retrain_gaps(fresh: dict, cached: dict) -> dict[str, float]:
    """Largest absolute gap between two runs of one arm and seed, per :data:`RETRAIN_TOLERANCE` key."""
    if (fresh["arm"], fresh["seed"]) != (cached["arm"], cached["seed"]):
        raise ValueError("compare runs of the same arm and seed")
    if fresh["eval_steps"] != cached["eval_steps"] or len(fresh["train_loss"]) != len(
        cached["train_loss"]
    ):
        raise ValueError("the two runs have different lengths: were they trained with one config?")
    train = [abs(a - b) for a, b in zip(fresh["train_loss"], cached["train_loss"], strict=True)]
    evals = [
        abs(a - b)
        for bucket in cached["eval_loss"]
        for a, b in zip(fresh["eval_loss"][bucket], cached["eval_loss"][bucket], strict=True)
    ]
    acc = [
        abs(fresh["final"][b]["accuracy"] - cached["final"][b]["accuracy"]) for b in cached["final"]
    ]
    return {
        "train_loss_first_20": max(train[:20]),
        "train_loss_first_40": max(train[:40]),
        "train_loss": max(train),
        "eval_loss": max(evals),
        "accuracy": max(acc),
    }


def within_retrain_tolerance(gaps: dict[str, float]) -> bool:
    """Whether every gap from :func:`retrain_gaps` is within :data:`RETRAIN_TOLERANCE`."""
    return all(gaps[k] <= tol for k, tol in RETRAIN_TOLERANCE.items())


def final_values(results: dict, arm: str, bucket: str, metric: str = "accuracy") -> list[float]:
    """Final ``metric`` of ``arm`` on ``bucket``, one value per seed (in the order the runs ran)."""
    return [r["final"][bucket][metric] for r in results["runs"] if r["arm"] == arm]


def save_results(results: dict, path: str | Path) -> Path:
    """Write ``results`` as compact JSON (one run per line) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = results["runs"]
    head = json.dumps({k: v for k, v in results.items() if k != "runs"})
    lines = ",\n".join(json.dumps(r, separators=(",", ":")) for r in runs)
    path.write_text(head[:-1] + ',\n"runs": [\n' + lines + "\n]}\n")
    return path


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summarize(results: dict) -> list[dict]:
    """One row per (arm, bucket): accuracy and held-out loss as mean, std, min, max over seeds."""
    rows = []
    for arm in results["config"]["arms"]:
        runs = [r for r in results["runs"] if r["arm"] == arm]
        for bucket in results["buckets"]:
            acc = [r["final"][bucket]["accuracy"] for r in runs]
            loss = [r["final"][bucket]["loss"] for r in runs]
            rows.append(
                {
                    "arm": arm,
                    "bucket": bucket,
                    "seeds": len(runs),
                    "accuracy": _spread(acc),
                    "loss": _spread(loss),
                }
            )
    return rows


def paired_differences(
    results: dict,
    arm: str,
    reference: str = "token_mean",
    bucket: str = "long",
    metric: str = "accuracy",
) -> dict[int, float]:
    """Seed -> ``metric(arm) - metric(reference)`` on ``bucket``: both runs saw the same data and init."""
    by_seed = {}
    for name in (arm, reference):
        if name not in results["arms"]:
            raise ValueError(f"arm {name!r} is not in these results: {list(results['arms'])}")
    for r in results["runs"]:
        if r["arm"] in (arm, reference):
            by_seed.setdefault(r["seed"], {})[r["arm"]] = r["final"][bucket][metric]
    return {s: round(v[arm] - v[reference], 4) for s, v in sorted(by_seed.items())}


def sign_test(differences) -> float:
    """Two-sided exact sign test: ``P(a split at least this uneven | + and - equally likely)``.

    Zeros are dropped; with ``n`` non-zero differences of which ``k`` are the rarer sign,
    ``p = min(1, 2 * sum_{i <= k} C(n, i) / 2^n)``.
    """
    signs = [d > 0 for d in differences if d != 0]
    n, k = len(signs), min(sum(signs), len(signs) - sum(signs))
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def paired_summary(
    results: dict,
    arm: str,
    reference: str = "token_mean",
    bucket: str = "long",
    metric: str = "accuracy",
) -> dict[str, float]:
    """Mean paired difference ``arm - reference``, seeds worse / better, and the sign test's p."""
    d = list(paired_differences(results, arm, reference, bucket, metric).values())
    return {
        "mean": round(statistics.fmean(d), 4),
        "worse": sum(x < 0 for x in d),
        "better": sum(x > 0 for x in d),
        "p": sign_test(d),
    }


def format_table(results: dict, metric: str = "accuracy") -> str:
    """A text table, arms x buckets, of ``metric`` ("accuracy" or "loss") as mean ± std over seeds."""
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"metric must be 'accuracy' or 'loss', got {metric!r}")
    rows = summarize(results)
    buckets = results["buckets"]
    arms = results["config"]["arms"]
    width = max(len(a) for a in arms) + 2
    lines = [
        f"{metric} (mean ± std over seeds)".ljust(width) + "".join(f"{b:>16}" for b in buckets)
    ]
    for arm in arms:
        cells = {r["bucket"]: r[metric] for r in rows if r["arm"] == arm}
        lines.append(
            arm.ljust(width)
            + "".join(f"{cells[b]['mean']:>9.3f} ± {cells[b]['std']:.3f}" for b in buckets)
        )
    return "\n".join(lines)


def _positive_int(flag: str):
    return arg_type(lambda text: parse_int(text, flag, low=1))


def _positive_float(text: str) -> float:
    try:
        value = float(text) if text.strip().isascii() else math.nan
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def _seed_list(text: str) -> tuple[int, ...]:
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
        type=arg_type(_seed_list),
        default=d.seeds,
        help="comma-separated seeds; a seed fixes the initial weights and the data order, "
        f"shared by every arm (default: {','.join(map(str, d.seeds))})",
    )
    opts = [
        ("--steps", _positive_int, "optimizer steps per run"),
        ("--batch-size", _positive_int, "examples per optimizer step"),
        ("--micro-batches", _positive_int, "micro-batches G of the gradient-accumulation arms"),
        (
            "--lr",
            _positive_float,
            "AdamW learning rate (the `sum` arm divides it by the "
            "typical number of trained tokens per batch)",
        ),
        ("--d-model", _positive_int, "model width"),
        ("--n-layers", _positive_int, "transformer blocks"),
        ("--n-heads", _positive_int, "attention heads (must divide --d-model)"),
        ("--eval-per-bucket", _positive_int, "held-out examples per answer-length bucket"),
        ("--eval-every", _positive_int, "steps between held-out loss measurements"),
        ("--threads", _positive_int, "torch threads (numbers can depend on it; keep 1 to compare)"),
    ]
    for flag, kind, text in opts:
        name = flag[2:].replace("-", "_")
        parser.add_argument(
            flag,
            type=_positive_int(flag) if kind is _positive_int else kind,
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
        type=Path,
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
            fallback = save_results(results, _fallback_path())
            print(
                f"lossviz experiment: error: could not write {args.out} ({err}); the results "
                f"are in {fallback}",
                file=sys.stderr,
            )
            return 1
    return 0


def check_writable(path: str | Path) -> None:
    """Raise an ``OSError`` that says why ``path`` cannot receive the results; checked before training.

    Creates the missing parent folders and a probe file, removed again, in the parent.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"{path} is a folder; give a file name such as {path / 'results.json'}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".lossviz-probe-"):
            pass
    except OSError as err:
        raise OSError(f"{path} cannot be written ({err.strerror or err})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{path} exists and is not writable")


def _fallback_path() -> Path:
    fd, name = tempfile.mkstemp(prefix="lossviz-experiment-", suffix=".json")
    os.close(fd)
    return Path(name)
