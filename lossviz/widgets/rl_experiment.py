"""Explorer of the cached RL experiment: pick arms, seeds and a metric, see the curves per step."""

from __future__ import annotations

import functools

import ipywidgets as W

from ..experiments.rl_results import WINDOW, late_values
from ..plots.rl_experiment import METRIC_LABELS, RLCurvesPicture
from .base import Canvas, EdgeCase, Explorer, View

__all__ = ["render_rl_experiment", "rl_experiment_explorer"]


def render_rl_experiment(
    results: dict, arms, seeds, metric: str, window: int = WINDOW, *, canvas: Canvas | None = None
) -> View:
    """Curves of ``metric`` for the chosen arms and seeds, and each arm's mean over the last steps.

    Pure by default (a new Figure each call); the explorer passes its own ``canvas``, which keeps
    one picture per choice of arms and seeds and redraws only the curves and the y axes.
    """
    arms, seeds = list(arms), list(seeds)
    if not arms:
        raise EdgeCase("pick at least one arm (ctrl/cmd-click selects several)")
    if not seeds:
        raise EdgeCase("pick at least one seed (ctrl/cmd-click selects several)")
    if metric not in METRIC_LABELS:
        raise EdgeCase(f"choose a metric among {list(METRIC_LABELS)}")
    canvas = canvas or Canvas()
    picture = canvas.picture(
        (tuple(arms), tuple(seeds)), lambda: RLCurvesPicture(results, arms, seeds, metric)
    )
    fig = picture.update(metric)
    lines = [f"{METRIC_LABELS[metric]}, mean over the last {window} steps, per seed:"]
    late = {}
    for arm in arms:
        per_seed = late_values(results, arm, metric, window)  # a seed with no such response: -
        late[arm] = [per_seed.get(s) for s in seeds]
        shown = "  ".join("  -  " if v is None else f"{v:5.2f}" for v in late[arm])
        lines.append(f"{arm:12s} {shown}")
    return View(figure=fig, text="\n".join(lines), data={"late": late}, png=canvas.png(picture))


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
    canvas = Canvas()
    render = functools.partial(render_rl_experiment, results, canvas=canvas)
    # every metric of the opening arms and seeds drawn once now (a few tens of ms each): the
    # dropdown then only pastes a metric's layer
    for name in METRIC_LABELS:
        if name != metric:
            render(arms, seeds, name)
    return Explorer(render, controls, height="300px")
