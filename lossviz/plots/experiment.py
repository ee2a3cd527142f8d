"""Plots of the reduction experiment: pure functions, results dict in, ``Figure`` out.

``results`` is what :func:`lossviz.experiments.sft_training.run_experiment` returns (or its cached JSON).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "ARM_COLORS",
    "metric_by_length",
    "training_curves",
    "heldout_curves",
    "experiment_figure",
    "paired_differences_figure",
]

ARM_COLORS = {
    "token_mean": "#1f77b4",
    "sample_mean": "#d62728",
    "sum": "#7f7f7f",
    "sum_same_lr": "#9467bd",
    "ga_naive": "#ff7f0e",
    "ga_global": "#17becf",
    "prompt_weight": "#2ca02c",
}


def _arms(results: dict, arms: Sequence[str] | None) -> list[str]:
    chosen = list(results["config"]["arms"]) if arms is None else list(arms)
    unknown = [a for a in chosen if a not in results["arms"]]
    if unknown or not chosen:
        raise ValueError(f"arms {unknown or chosen} not in these results: {list(results['arms'])}")
    return chosen


def _runs(results: dict, arm: str) -> list[dict]:
    return [r for r in results["runs"] if r["arm"] == arm]


def _bars(ax, results: dict, arms: list[str], metric: str) -> None:
    buckets = results["buckets"]
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        per_seed = np.array([[r["final"][b][metric] for b in buckets] for r in _runs(results, arm)])
        x = np.arange(len(buckets)) + (i - (len(arms) - 1) / 2) * width
        color = ARM_COLORS.get(arm, f"C{i}")
        label = results["arms"][arm].get("label", arm)
        ax.bar(x, per_seed.mean(axis=0), width, color=color, alpha=0.75, label=label)
        for row in per_seed:  # every seed as a dot: the spread is part of the result
            ax.plot(x, row, "o", ms=2.5, color="black", alpha=0.6)
    ax.set_xticks(np.arange(len(buckets)), [_bucket_label(results, b) for b in buckets])
    ax.grid(axis="y", alpha=0.3)


def _bucket_label(results: dict, bucket: str) -> str:
    for b in results["config"]["task"]["buckets"]:
        if b["name"] == bucket:
            lo, hi = b["answer"]
            return f"{bucket}\n(answer {lo}-{hi} + EOS)"
    return bucket


def metric_by_length(
    results: dict, metric: str = "accuracy", arms: Sequence[str] | None = None
) -> Figure:
    """Bars: final ``metric`` ("accuracy" or "loss") per answer-length bucket and arm; dots = seeds."""
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"metric must be 'accuracy' or 'loss', got {metric!r}")
    arms = _arms(results, arms)
    fig = Figure(figsize=(8.2, 3.4), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    _bars(ax, results, arms, metric)
    if metric == "accuracy":
        ax.set_ylabel("exact-match accuracy (greedy)")
        ax.set_ylim(0, 1.05)
    else:
        ax.set_ylabel("held-out loss per answer token")
        ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _band(ax, steps, curves: np.ndarray, color: str, label: str) -> None:
    ax.plot(steps, np.median(curves, axis=0), color=color, lw=1.5, label=label)
    ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.15)


def training_curves(results: dict, arms: Sequence[str] | None = None) -> Figure:
    """Training loss per answer token (median over seeds, band = min..max) against the step.

    One panel per arm on a shared log scale, every arm named in its panel's title and in one legend:
    seven overlapping bands in one axes cannot be told apart.
    """
    arms = _arms(results, arms)
    cols = min(4, len(arms))
    rows = -(-len(arms) // cols)
    fig = Figure(figsize=(2.6 * cols, 2.1 * rows + 0.5), dpi=80, layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    reference = np.array([r["train_loss"] for r in _runs(results, arms[0])])
    steps = np.arange(1, reference.shape[1] + 1)
    for i, (ax, arm) in enumerate(zip(axes, arms, strict=False)):
        if i:  # the first arm, thin and dashed, in every other panel: a common yardstick
            ax.plot(steps, np.median(reference, axis=0), color="black", lw=0.7, ls="--")
        curves = np.array([r["train_loss"] for r in _runs(results, arm)])
        _band(ax, steps, curves, ARM_COLORS.get(arm, f"C{i}"), arm)
        ax.set_title(arm, fontsize=9)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[len(arms) :]:
        ax.set_visible(False)
    handles = [h for ax in axes[: len(arms)] for h in ax.get_legend_handles_labels()[0][-1:]]
    labels = [f"{a}: {results['arms'].get(a, {}).get('label', a)}" for a in arms]
    fig.legend(
        handles,
        labels,
        loc="outside upper center",
        ncols=min(len(arms), 3),
        fontsize=8,
        title=f"median over seeds, band = min to max; dashed: {arms[0]} for comparison",
        title_fontsize=8,
    )
    fig.supxlabel("optimizer step", fontsize=9)
    fig.supylabel("training loss per answer token", fontsize=9)
    return fig


def heldout_curves(results: dict, arms: Sequence[str] | None = None) -> Figure:
    """Held-out loss per answer token against the step, one panel per bucket (median, min..max)."""
    arms = _arms(results, arms)
    buckets = results["buckets"]
    fig = Figure(figsize=(8, 2.8), dpi=80, layout="constrained")
    axes = fig.subplots(1, len(buckets), sharey=True, squeeze=False)[0]
    for ax, bucket in zip(axes, buckets, strict=True):
        for i, arm in enumerate(arms):
            runs = _runs(results, arm)
            curves = np.array([r["eval_loss"][bucket] for r in runs])
            _band(ax, runs[0]["eval_steps"], curves, ARM_COLORS.get(arm, f"C{i}"), arm)
        ax.set_title(bucket, fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out loss per answer token")
    axes[-1].legend(fontsize=6)
    return fig


def experiment_figure(results: dict) -> Figure:
    """The README figure: exact-match accuracy per answer length for every arm, seeds as dots."""
    arms = _arms(results, None)
    cfg = results["config"]
    fig = Figure(figsize=(9.5, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    _bars(ax, results, arms, "accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("exact-match accuracy")
    ax.set_title(
        f"Same data, same seeds, only the loss reduction differs "
        f"({cfg['steps']} steps, {len(cfg['seeds'])} seeds; bars = mean, dots = seeds)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def paired_differences_figure(
    differences: Mapping[str, Mapping[int, float]],
    *,
    reference: str = "token_mean",
    ylabel: str = "long-answer accuracy\nminus the reference",
    title: str = "",
) -> Figure:
    """One column per arm, one dot per seed at ``arm - reference`` (paired: same data, same init).

    ``differences[arm][seed]``: the paired difference. A zero line splits "better than the
    reference" (above) from "worse" (below); a short bar marks each arm's mean, and the count of
    seeds above / below zero is written under each column.
    """
    if not differences or any(not d for d in differences.values()):
        raise ValueError("differences needs at least one arm with at least one seed")
    arms = list(differences)
    fig = Figure(figsize=(1.25 * len(arms) + 1.6, 3.2), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    ax.axhline(0.0, color="black", lw=1.0, zorder=1)
    rng = np.random.default_rng(0)  # a fixed jitter: dots at one value stay side by side
    for i, arm in enumerate(arms):
        y = np.array(list(differences[arm].values()), dtype=float)
        x = i + rng.uniform(-0.12, 0.12, size=len(y))
        ax.plot(x, y, "o", ms=5, color=ARM_COLORS.get(arm, f"C{i}"), alpha=0.8, zorder=3)
        ax.plot([i - 0.25, i + 0.25], [y.mean()] * 2, color="black", lw=2, zorder=4)
        ax.annotate(
            f"{int((y > 0).sum())} up / {int((y < 0).sum())} down",
            (i, 0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(range(len(arms)), arms, fontsize=9)
    ax.set_xlim(-0.6, len(arms) - 0.4)
    top = max(
        float(np.abs(np.concatenate([list(d.values()) for d in differences.values()])).max()), 0.05
    )
    ax.set_ylim(-1.15 * top - 0.12, 1.15 * top)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(
        title or f"each dot one seed: arm minus {reference}; bar = mean; above 0 = better",
        fontsize=9,
    )
    return fig
