"""Plots for gradient accumulation and data parallelism: per-sample weights, gradient gaps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

__all__ = ["COLORS", "sample_weight_bars", "gradient_gap_bars"]

COLORS = {"full batch": "#444444", "naive": "#d95f02", "global": "#1b9e77", "sum": "#7570b3"}


def _gap_axis(ax, gaps: Mapping[str, float], floor: float = 1e-12) -> None:
    # log10 on a linear axis: a log-scaled axis costs many minor ticks on every redraw
    names = list(gaps)
    logs = [math.log10(max(float(gaps[n]), floor)) for n in names]
    lo = math.log10(floor)
    colors = [COLORS.get(n.split()[0], "#999999") for n in names]
    ax.barh(range(len(names)), [v - lo for v in logs], left=lo, color=colors)
    ax.set_yticks(range(len(names)), [f"{n}\n{gaps[n]:.1e}" for n in names], fontsize=7)
    ax.set_xlim(lo, max(1.0, max(logs) + 1))
    ax.set_xticks(range(int(lo), int(max(1.0, max(logs) + 1)) + 1, 3))
    ax.invert_yaxis()
    ax.set_xlabel("log10 L2 distance to full-batch grad", fontsize=7)
    ax.set_title("tiny model's gradient", fontsize=8)
    ax.tick_params(labelsize=7)


def sample_weight_bars(
    lengths: Sequence[int],
    columns: Mapping[str, Sequence[float]],
    *,
    placement: Sequence[tuple[int, int]] | None = None,
    gaps: Mapping[str, float] | None = None,
    title: str = "",
    figsize: tuple[float, float] = (7.5, 3.0),
) -> Figure:
    """Grouped bars: each sample's weight in the step under each column (e.g. full batch, naive).

    ``columns[name]: [B]`` per-sample weights; ``placement[i] = (rank, micro_batch)`` labels the
    bars; ``gaps`` (optional) adds a box listing gradient distances to the full batch.
    """
    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.2, top=0.88)
    if gaps:  # a text box, not a second axes: one axes keeps each redraw fast
        lines = [f"{name}: {value:.1e}" for name, value in gaps.items()]
        ax.text(
            0.99,
            0.97,
            "gradient L2 distance to full batch\n" + "\n".join(lines),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            bbox={"facecolor": "white", "edgecolor": "#bbbbbb"},
        )
    B = len(lengths)
    names = list(columns)
    width = 0.8 / max(len(names), 1)
    handles = []
    for j, name in enumerate(names):
        # one PolyCollection per column instead of one Rectangle artist per bar: much faster
        left = [i + (j - len(names) / 2) * width for i in range(B)]
        boxes = [
            [(x, 0), (x, h), (x + width, h), (x + width, 0)]
            for x, h in zip(left, columns[name], strict=True)
        ]
        color = COLORS.get(name, f"C{j}")
        ax.add_collection(PolyCollection(boxes, facecolors=color, edgecolors="none"))
        handles.append(Patch(color=color, label=name))
    ax.set_xlim(-0.6, B - 0.4)
    labels = []
    for i, n in enumerate(lengths):
        where = "" if placement is None else f"\nr{placement[i][0]} mb{placement[i][1]}"
        labels.append(f"{n} tok{where}")
    step = max(1, B // 16)  # keep tick labels readable for many samples
    ax.set_xticks(range(0, B, step), labels[::step], fontsize=7)
    top = max((max(v) for v in columns.values() if len(v)), default=1.0)
    ax.set_ylim(0, top * (1.5 if gaps else 1.2) if top > 0 else 1.0)  # room for legend and box
    ax.yaxis.set_major_locator(MaxNLocator(4))  # every tick is text to lay out on each redraw
    ax.set_ylabel("sample's weight in the step", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(handles=handles, fontsize=7, frameon=False, ncols=len(names), loc="upper left")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def gradient_gap_bars(
    gaps: Mapping[str, float], *, figsize: tuple[float, float] = (5.0, 2.0)
) -> Figure:
    """Horizontal bars of gradient distances on a log scale (float rounding vs the naive bug)."""
    fig = Figure(figsize=figsize)
    _gap_axis(fig.subplots(), gaps)
    fig.subplots_adjust(left=0.35, right=0.97, bottom=0.25, top=0.85)
    return fig
