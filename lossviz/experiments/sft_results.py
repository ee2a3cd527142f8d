"""The SFT experiment's results: the cached runs, the re-train tolerance, and their statistics.

:func:`.sft_training.run_experiment` trains the arms; its JSON is cached in
``lossviz/data/experiment_results.json`` (notebook 10 reads it; ``python -m lossviz experiment
--out lossviz/data/experiment_results.json`` rewrites it, see :mod:`.sft_cli`).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ..data_files import data_file
from ..devices import torch_threads
from .results import config_from_results, load_results_file, sign_test, spread
from .sft_training import ARMS, ExperimentConfig, train_arm

__all__ = [
    "DEFAULT_CACHE",
    "default_config",
    "load_results",
    "config_of",
    "RETRAIN_TOLERANCE",
    "retrain",
    "retrain_gaps",
    "within_retrain_tolerance",
    "final_values",
    "summarize",
    "paired_differences",
    "paired_summary",
    "format_table",
]

DEFAULT_CACHE = data_file("experiment_results.json")


def default_config() -> ExperimentConfig:
    """The configuration the notebook's cached results were produced with."""
    return ExperimentConfig()


def load_results(path: str | Path | None = None) -> dict:
    """Read cached results (default: the copy shipped in the package)."""
    return load_results_file(Path(path) if path is not None else DEFAULT_CACHE, "experiment")


def config_of(results: dict) -> ExperimentConfig:
    """The :class:`ExperimentConfig` stored in ``results`` (lists back to tuples)."""
    return config_from_results(ExperimentConfig, results)


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
    with torch_threads(cfg.threads):
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
                    "accuracy": spread(acc),
                    "loss": spread(loss),
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
