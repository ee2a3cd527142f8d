"""Explorer of the cached RL experiment: pick arms, seeds and a metric, see the curves per step."""

from __future__ import annotations

import functools

import ipywidgets as W

from ..plots.rl_experiment import METRIC_LABELS, rl_curves
from .base import EdgeCase, Explorer, View

__all__ = ["render_rl_experiment", "rl_experiment_explorer"]


def render_rl_experiment(results: dict, arms, seeds, metric: str, window: int = 20) -> View:
    """Curves of ``metric`` for the chosen arms and seeds, and each arm's mean over the last steps."""
    arms, seeds = list(arms), list(seeds)
    if not arms:
        raise EdgeCase("pick at least one arm (ctrl/cmd-click selects several)")
    if not seeds:
        raise EdgeCase("pick at least one seed (ctrl/cmd-click selects several)")
    fig = rl_curves(results, metric, arms, seeds)
    lines = [f"{METRIC_LABELS[metric]}, mean over the last {window} steps, per seed:"]
    late = {}
    for arm in arms:
        runs = {r["seed"]: r["curves"][metric] for r in results["runs"] if r["arm"] == arm}
        values = []
        for s in seeds:
            kept = [v for v in runs[s][-window:] if v is not None]
            values.append(sum(kept) / len(kept) if kept else None)
        late[arm] = values
        shown = "  ".join("  -  " if v is None else f"{v:5.2f}" for v in values)
        lines.append(f"{arm:12s} {shown}")
    return View(figure=fig, text="\n".join(lines), data={"late": late})


def rl_experiment_explorer(
    results: dict, arms=("grpo", "dr_grpo"), metric: str = "len_incorrect"
) -> Explorer:
    """Multi-selects for arms and seeds and a metric dropdown over cached ``results``."""
    seeds = list(results["config"]["seeds"])
    controls = {
        "arms": W.SelectMultiple(
            options=list(results["config"]["arms"]), value=tuple(arms), description="arms", rows=5
        ),
        "seeds": W.SelectMultiple(options=seeds, value=tuple(seeds), description="seeds", rows=5),
        "metric": W.Dropdown(
            options=[(label, name) for name, label in METRIC_LABELS.items()],
            value=metric,
            description="metric",
        ),
    }
    return Explorer(functools.partial(render_rl_experiment, results), controls, height="300px")
