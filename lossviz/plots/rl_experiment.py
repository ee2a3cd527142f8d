"""Plots of the RL aggregation experiment: pure functions, results dict in, ``Figure`` out.

``results`` is what :func:`lossviz.experiments.rl_training.run_rl_experiment` returns (or its cached JSON).
Every step's value comes from the responses sampled at that step; seeds are thin lines, the mean
over seeds a thick one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["RL_ARM_COLORS", "METRIC_LABELS", "RLCurvesPicture", "rl_curves", "rl_figure"]

RL_ARM_COLORS = {
    "grpo": "#d62728",
    "dapo": "#1f77b4",
    "dr_grpo": "#2ca02c",
    "dr_grpo_std": "#9467bd",
    "grpo_no_std": "#ff7f0e",
}
METRIC_LABELS = {
    "reward": "reward (share correct)",
    "len_correct": "length of correct responses",
    "len_incorrect": "length of incorrect responses",
    "excess_incorrect": "incorrect: length - answer length",
    "hit_limit": "share at the length limit",
    "length": "length of all responses",
}


def _choose(results: dict, arms: Sequence[str] | None, seeds: Sequence[int] | None):
    arms = list(results["config"]["arms"]) if arms is None else list(arms)
    seeds = list(results["config"]["seeds"]) if seeds is None else list(seeds)
    unknown = [a for a in arms if a not in results["arms"]]
    if unknown or not arms:
        raise ValueError(f"arms {unknown or arms} not in these results: {list(results['arms'])}")
    missing = [s for s in seeds if s not in results["config"]["seeds"]]
    if missing or not seeds:
        raise ValueError(
            f"seeds {missing or seeds} not in these results: {results['config']['seeds']}"
        )
    return arms, seeds


def _as_array(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _curves(
    results: dict, arm: str, seeds: list[int], metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """``[S, K]`` values of ``metric`` per seed and step (NaN where a step had none), and their mean."""
    runs = {r["seed"]: r for r in results["runs"] if r["arm"] == arm}
    curves = np.array([_as_array(runs[s]["curves"][metric]) for s in seeds])
    with np.errstate(invalid="ignore"):  # a step where no seed had such a response
        counts = np.sum(~np.isnan(curves), axis=0)
        mean = np.where(counts > 0, np.nansum(curves, axis=0) / np.maximum(counts, 1), np.nan)
    return curves, mean


def _draw(ax, results: dict, arm: str, seeds: list[int], metric: str, color: str) -> None:
    curves, mean = _curves(results, arm, seeds, metric)
    steps = np.arange(1, curves.shape[1] + 1)
    for row in curves:
        ax.plot(steps, row, color=color, lw=0.6, alpha=0.45)
    ax.plot(steps, mean, color=color, lw=2.0, label=f"{arm}: mean of {len(seeds)} seeds")


class RLCurvesPicture:
    """One panel per arm: a metric per RL step, thin lines = seeds, thick = their mean.

    Fixed panel rectangles, no layout engine (which costs more than the drawing); :meth:`update`
    switches the metric: the lines, every panel's y axis (ticks, grid, label) and the title, listed
    in ``dynamic``. The rest (panel titles, x axes, the key) does not depend on the metric, so an
    explorer's :class:`~lossviz.widgets.Canvas` draws it once and blits it.
    """

    def __init__(
        self,
        results: dict,
        arms: Sequence[str] | None,
        seeds: Sequence[int] | None,
        metric: str = "reward",
        *,
        dpi: int = 80,
    ) -> None:
        self.results = results
        self.arms, self.seeds = _choose(results, arms, seeds)
        n = len(self.arms)
        width, height = 2.6 * n + 1.0, 3.7  # inches; each panel 2.6 wide, 2.0 high
        self.fig = fig = Figure(figsize=(width, height), dpi=dpi)
        left, gap = 0.85 / width, 0.25 / width
        panel = (1 - left - 0.15 / width - gap * (n - 1)) / n
        bottom = 0.85 / height  # tick labels, "RL step", then the key of the lines
        self.axes, self.lines = [], []
        for i, arm in enumerate(self.arms):
            ax = fig.add_axes(
                (left + i * (panel + gap), bottom, panel, 2.0 / height),
                sharey=self.axes[0] if self.axes else None,
            )
            ax.tick_params(labelleft=i == 0)
            color = RL_ARM_COLORS.get(arm, f"C{i}")
            _draw(ax, results, arm, self.seeds, metric, color)
            self.lines.append(list(ax.lines))
            # "name: what it does" on two lines: the longest label fits a 2.6-inch panel
            ax.set_title(results["arms"][arm].get("label", arm).replace(": ", ":\n"), fontsize=10)
            ax.set_xlabel("RL step")
            ax.grid(alpha=0.3)
            self.axes.append(ax)
        key = [
            Line2D([], [], color="0.4", lw=0.6, alpha=0.6, label="one seed"),
            Line2D([], [], color="0.4", lw=2.0, label=f"mean of {len(self.seeds)} seeds"),
        ]
        fig.legend(handles=key, loc="lower center", ncol=2, frameon=False, fontsize=9)
        self.title = fig.suptitle("", fontsize=11)
        # y axes first: their grid lies under the curves, as in a full draw
        self.dynamic = [
            *(ax.yaxis for ax in self.axes),
            *(line for lines in self.lines for line in lines),
            self.title,
        ]

    def static_key(self) -> tuple:
        """Nothing outside ``dynamic`` changes with the metric."""
        return ()

    def update(self, metric: str) -> Figure:
        """Show ``metric`` (a key of :data:`METRIC_LABELS`); returns the Figure."""
        if metric not in METRIC_LABELS:
            raise ValueError(f"metric must be one of {list(METRIC_LABELS)}, got {metric!r}")
        values = []
        for arm, lines in zip(self.arms, self.lines, strict=True):
            curves, mean = _curves(self.results, arm, self.seeds, metric)
            for line, row in zip(lines, [*curves, mean], strict=True):
                line.set_ydata(row)
            values.append(curves)
        every = np.concatenate([c.ravel() for c in values])
        lo, hi = (np.nanmin(every), np.nanmax(every)) if np.isfinite(every).any() else (0.0, 1.0)
        pad = 0.05 * (hi - lo) or 0.5
        for ax in self.axes:  # each panel: none may autoscale to the metric it was built with
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_autoscale_on(False)
        self.axes[0].set_ylabel(METRIC_LABELS[metric], fontsize=9)
        self.title.set_text(f"{METRIC_LABELS[metric]} per RL step, one panel per arm")
        return self.fig


def rl_curves(
    results: dict,
    metric: str = "len_incorrect",
    arms: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> Figure:
    """One panel per arm: ``metric`` per RL step, thin lines = seeds, thick = mean over seeds."""
    if metric not in METRIC_LABELS:
        raise ValueError(f"metric must be one of {list(METRIC_LABELS)}, got {metric!r}")
    return RLCurvesPicture(results, arms, seeds, metric).update(metric)


def rl_figure(results: dict) -> Figure:
    """The README figure: incorrect-response length, its excess over the answer, and reward."""
    arms, seeds = _choose(results, None, None)
    metrics = ("len_incorrect", "excess_incorrect", "reward")
    cfg = results["config"]
    fig = Figure(figsize=(2.4 * len(arms) + 0.9, 6.4), dpi=100, layout="constrained")
    axes = fig.subplots(len(metrics), len(arms), sharey="row", sharex=True, squeeze=False)
    for row, metric in enumerate(metrics):
        for col, arm in enumerate(arms):
            ax = axes[row, col]
            _draw(ax, results, arm, seeds, metric, RL_ARM_COLORS.get(arm, f"C{col}"))
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(results["arms"][arm].get("label", arm), fontsize=8)
            if row == len(metrics) - 1:
                ax.set_xlabel("RL step")
        axes[row, 0].set_ylabel(METRIC_LABELS[metric], fontsize=8)
    fig.suptitle(
        f"Tiny policy, reverse task: {cfg['prompts']} prompts x G={cfg['group']} responses per "
        f"step, length limit {cfg['max_new']}, {len(seeds)} seeds (thin) and their mean (thick)",
        fontsize=9,
    )
    return fig
