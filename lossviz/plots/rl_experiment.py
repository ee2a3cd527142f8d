"""Plots of the RL aggregation experiment: pure functions, results dict in, ``Figure`` out.

``results`` is what :func:`lossviz.experiments.rl_training.run_rl_experiment` returns (or its cached JSON).
Every step's value comes from the answers sampled at that step. Arms share one axis: per arm a line
(the mean over seeds of each seed's moving average) and a band (the seeds' range); per-seed paired
differences are dots around 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = [
    "RL_ARM_COLORS",
    "METRIC_LABELS",
    "RLCurvesPicture",
    "paired_differences_figure",
    "rl_curves",
    "rl_figure",
]

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


def _smooth(curves: np.ndarray, window: int) -> np.ndarray:
    """``[S, K]`` trailing moving average over ``window`` steps, ignoring NaN (NaN if none)."""
    if window <= 1:
        return curves
    ok = ~np.isnan(curves)
    sums = np.cumsum(np.where(ok, curves, 0.0), axis=1)
    counts = np.cumsum(ok, axis=1)
    sums[:, window:] = sums[:, window:] - sums[:, :-window]
    counts[:, window:] = counts[:, window:] - counts[:, :-window]
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _summary(results: dict, arm: str, seeds: list[int], metric: str, window: int):
    """Per step: the mean over seeds of the smoothed curves, and the seeds' lowest and highest."""
    curves = _smooth(_curves(results, arm, seeds, metric)[0], window)
    ok = ~np.isnan(curves)
    any_ok = ok.any(axis=0)
    mean = np.where(
        any_ok, np.where(ok, curves, 0.0).sum(axis=0) / np.maximum(ok.sum(axis=0), 1), np.nan
    )
    lo = np.where(any_ok, np.where(ok, curves, np.inf).min(axis=0), np.nan)
    hi = np.where(any_ok, np.where(ok, curves, -np.inf).max(axis=0), np.nan)
    return mean, lo, hi


def _band(steps: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Polygons between ``lo`` and ``hi``, one per run of steps where both are defined."""
    ok = ~(np.isnan(lo) | np.isnan(hi))
    polygons, start = [], None
    for k in range(len(steps) + 1):
        if k < len(steps) and ok[k]:
            start = k if start is None else start
        elif start is not None:
            x = steps[start:k]
            top = np.column_stack([x, hi[start:k]])
            bottom = np.column_stack([x[::-1], lo[start:k][::-1]])
            polygons.append(np.vstack([top, bottom]))
            start = None
    return polygons


def _draw(ax, results: dict, arm: str, seeds: list[int], metric: str, color: str, window: int):
    mean, lo, hi = _summary(results, arm, seeds, metric, window)
    steps = np.arange(1, len(mean) + 1)
    band = PolyCollection(_band(steps, lo, hi), facecolors=color, edgecolors="none", alpha=0.18)
    ax.add_collection(band)
    label = results["arms"][arm].get("label", arm).replace(": ", ":\n")  # fits beside the axis
    (line,) = ax.plot(steps, mean, color=color, lw=2.0, label=label)
    return band, line


class RLCurvesPicture:
    """Every arm on one axis: a metric per RL step, smoothed; line = mean of the seeds, band = their range.

    Each seed's curve is a trailing moving average over ``window`` steps (per-step values of 64 sampled
    answers are noisy); the line is the mean of the seeds' curves, the shaded band spans the lowest to
    the highest seed. Fixed rectangles, no layout engine; :meth:`update` switches the metric: the
    lines, bands, the y axis and the title, one layer per metric (:meth:`layers`). The rest (x axis,
    legend) does not depend on the metric, so an explorer's :class:`~lossviz.widgets.Canvas` draws
    it once, and each metric's layer once.
    """

    def __init__(
        self,
        results: dict,
        arms: Sequence[str] | None,
        seeds: Sequence[int] | None,
        metric: str = "reward",
        *,
        dpi: int = 80,
        window: int = 10,
    ) -> None:
        self.results = results
        self.arms, self.seeds = _choose(results, arms, seeds)
        self.window = max(int(window), 1)
        width, height = 8.4, 3.9  # inches
        self.fig = fig = Figure(figsize=(width, height), dpi=dpi)
        self.ax = ax = fig.add_axes((0.8 / width, 0.6 / height, 4.9 / width, 2.7 / height))
        self.bands, self.lines = [], []
        for i, arm in enumerate(self.arms):
            color = RL_ARM_COLORS.get(arm, f"C{i}")
            band, line = _draw(ax, results, arm, self.seeds, metric, color, self.window)
            self.bands.append(band)
            self.lines.append(line)
        ax.set_xlabel("RL step")
        # a margin: bands that reached the spines would be blitted over them
        ax.set_xlim(0, max(len(line.get_xdata()) for line in self.lines) + 1)
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)  # grid under the bands in a full draw, as in a blitted one
        handles = [
            *self.lines,
            Patch(color="0.6", alpha=0.35, label=f"range of {len(self.seeds)} seeds"),
        ]
        fig.legend(
            handles=handles,
            labels=[h.get_label() for h in handles],
            loc="center left",
            bbox_to_anchor=(5.85 / width, 0.5),
            frameon=False,
            fontsize=9,
        )
        self.title = ax.set_title("", fontsize=10, y=1.0)
        self.metric = metric
        self.dynamic: list = []

    def static_key(self) -> tuple:
        """Nothing outside the metric's layer changes with the metric."""
        return ()

    def layers(self) -> list[tuple[str, object, list]]:
        """One layer per metric: the y axis first (its grid lies under the bands and lines, as in
        a full draw), the bands, the lines, the title; drawn once per metric."""
        return [("metric", self.metric, [self.ax.yaxis, *self.bands, *self.lines, self.title])]

    def update(self, metric: str) -> Figure:
        """Show ``metric`` (a key of :data:`METRIC_LABELS`); returns the Figure."""
        if metric not in METRIC_LABELS:
            raise ValueError(f"metric must be one of {list(METRIC_LABELS)}, got {metric!r}")
        extent = []
        for arm, band, line in zip(self.arms, self.bands, self.lines, strict=True):
            mean, lo, hi = _summary(self.results, arm, self.seeds, metric, self.window)
            steps = np.arange(1, len(mean) + 1)
            line.set_ydata(mean)
            band.set_verts(_band(steps, lo, hi))
            extent += [v for v in (lo, hi) if np.isfinite(v).any()]
        every = np.concatenate(extent) if extent else np.array([0.0, 1.0])
        every = every[np.isfinite(every)]
        lo, hi = (every.min(), every.max()) if every.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo) or 0.5
        self.ax.set_ylim(lo - pad, hi + pad)
        self.ax.set_autoscale_on(False)
        self.ax.set_ylabel(METRIC_LABELS[metric], fontsize=9)
        self.title.set_text(
            f"{METRIC_LABELS[metric]}\nline: mean of {len(self.seeds)} seeds, band: their range "
            f"({self.window}-step moving average)"
        )
        self.metric = metric
        return self.fig


def rl_curves(
    results: dict,
    metric: str = "len_incorrect",
    arms: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    window: int = 10,
) -> Figure:
    """Every arm on one axis: ``metric`` per RL step (``window``-step average); seeds' mean and range."""
    if metric not in METRIC_LABELS:
        raise ValueError(f"metric must be one of {list(METRIC_LABELS)}, got {metric!r}")
    return RLCurvesPicture(results, arms, seeds, metric, window=window).update(metric)


def paired_differences_figure(
    differences: Mapping[str, Mapping[object, float]], *, metric: str, baseline: str
) -> Figure:
    """One row per arm: each seed's ``arm - baseline`` as a dot around 0, and their mean as a bar.

    ``differences``: ``{arm: {seed: value}}`` (e.g. ``paired_rl(...)["differences"]``); a dot left
    of 0 means the arm was lower than ``baseline`` for that seed. The count of seeds below and above
    0 is written at the right of each row.
    """
    if metric not in METRIC_LABELS:
        raise ValueError(f"metric must be one of {list(METRIC_LABELS)}, got {metric!r}")
    arms = list(differences)
    if not arms:
        raise ValueError("differences is empty: give at least one arm's per-seed differences")
    fig = Figure(figsize=(7.2, 0.55 * len(arms) + 1.3))
    ax = fig.add_axes(
        (0.2, 1.0 / (0.55 * len(arms) + 1.3), 0.62, 0.55 * len(arms) / (0.55 * len(arms) + 1.3))
    )
    ax.axvline(0.0, color="0.3", lw=0.8)
    top = 0.0
    for i, arm in enumerate(arms):
        values = np.array([v for v in differences[arm].values() if v is not None], dtype=float)
        color = RL_ARM_COLORS.get(arm, f"C{i}")
        ax.scatter(values, np.full(len(values), i), s=30, color=color, alpha=0.8, zorder=3)
        if len(values):
            ax.plot([values.mean()] * 2, [i - 0.3, i + 0.3], color=color, lw=2.5)
            top = max(top, float(np.abs(values).max()))
        lower, higher = int((values < 0).sum()), int((values > 0).sum())
        ax.annotate(f"lower in {lower}, higher in {higher}", (1.02, i), xycoords=("axes fraction", "data"),
                    va="center", fontsize=8)  # fmt: skip
    top = top * 1.1 or 1.0
    ax.set_xlim(-top, top)
    ax.set_ylim(len(arms) - 0.5, -0.5)
    ax.set_yticks(range(len(arms)), [f"{a} - {baseline}" for a in arms], fontsize=9)
    ax.set_xlabel(f"difference in {METRIC_LABELS[metric]} (mean of the last steps)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(
        "one dot per seed (paired: same warm-up, prompts, sampler); bar = mean", fontsize=9
    )
    return fig


def rl_figure(results: dict, *, window: int = 10) -> Figure:
    """The README figure: incorrect-answer length, its excess over the answer, and reward; arms overlaid."""
    arms, seeds = _choose(results, None, None)
    metrics = ("len_incorrect", "excess_incorrect", "reward")
    cfg = results["config"]
    fig = Figure(figsize=(7.6, 7.4), dpi=100, layout="constrained")
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        for col, arm in enumerate(arms):
            _draw(ax, results, arm, seeds, metric, RL_ARM_COLORS.get(arm, f"C{col}"), window)
        ax.autoscale_view()
        ax.grid(alpha=0.3)
        ax.set_ylabel(METRIC_LABELS[metric], fontsize=8)
    axes[-1].set_xlabel("RL step")
    axes[0].legend(fontsize=7, frameon=False, loc="best")
    fig.suptitle(
        f"Tiny policy, reverse task: {cfg['prompts']} prompts x G={cfg['group']} answers per step, "
        f"length limit {cfg['max_new']}\nline: mean of {len(seeds)} seeds, band: their range "
        f"({window}-step moving average)",
        fontsize=8,
    )
    return fig
