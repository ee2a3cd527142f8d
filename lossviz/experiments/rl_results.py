"""The RL experiment's results: the cached runs, per-step curves, late-window means, paired tests.

:func:`.rl_training.run_rl_experiment` trains the arms; its JSON is cached in
``lossviz/data/rl_experiment_results.json`` (notebook 14 reads it; ``python -m lossviz
rl-experiment --out lossviz/data/rl_experiment_results.json`` rewrites it, see :mod:`.rl_cli`).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ..data_files import data_file
from .results import config_from_results, load_results_file, sign_test
from .rl_training import METRICS, RLConfig

__all__ = [
    "DEFAULT_RL_CACHE",
    "WINDOW",
    "load_rl_results",
    "rl_config_of",
    "curve",
    "window_mean",
    "late_values",
    "summarize_rl",
    "format_rl_table",
    "paired_rl",
]

DEFAULT_RL_CACHE = data_file("rl_experiment_results.json")


WINDOW = 20  # "late" = the mean over the last WINDOW steps


def load_rl_results(path: str | Path | None = None) -> dict:
    """Read cached RL results (default: the copy shipped in the package)."""
    return load_results_file(Path(path) if path is not None else DEFAULT_RL_CACHE, "rl-experiment")


def rl_config_of(results: dict) -> RLConfig:
    """The :class:`RLConfig` stored in ``results`` (lists back to tuples)."""
    return config_from_results(RLConfig, results)


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
