"""Plots for gradient accumulation and data parallelism: per-sample weights, gradient gaps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

__all__ = ["COLORS", "WeightBars", "sample_weight_bars", "gradient_gap_bars"]

COLORS = {"full batch": "#444444", "naive": "#d95f02", "global": "#1b9e77", "sum": "#7570b3"}
_BAND = ("#ececec", "#ffffff")  # alternating GA-step backgrounds
_RANK_BAND = ("#dce8f5", "#f7efc2", "#e4e4e4", "#f4dcea")  # rank 0, 1, 2, 3 (then again)
_RANK_NAMES = ("blue", "yellow", "grey", "pink")
SHADES = ("step", "rank")
MAX_LABELS = 8  # every label is ~1 ms per redraw: at most this many under the bars


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


def _label_step(B: int) -> int:
    return max(1, math.ceil(B / MAX_LABELS))


class WeightBars:
    """A reusable grouped-bar figure for ``B`` samples and the given columns, updated in place.

    Built once per layout (``B``, column names); :meth:`update` moves the artists (bar corners,
    label texts, limits), so a widget redraws without building a Figure and Axes each time.
    No axis decorations: a few texts stand for the y scale, legend and sample labels.
    """

    def __init__(
        self, B: int, names: Sequence[str], figsize: tuple[float, float] = (7.5, 2.8)
    ) -> None:
        self.B, self.names = B, list(names)
        self.fig = fig = Figure(figsize=figsize)
        self.ax = ax = fig.add_axes((0.07, 0.2, 0.91, 0.64))
        ax.set_axis_off()
        ax.set_xlim(-0.5, B - 0.5)
        # GA-step bands behind the bars, a line at the top value, a baseline
        self.bands = PolyCollection([], edgecolors="none", zorder=0)
        self.scale = LineCollection([], colors="#cccccc", linewidths=0.6, zorder=0.5)
        for c in (self.bands, self.scale):
            ax.add_collection(c)
        self.bars = []
        width = 0.8 / max(len(self.names), 1)
        x = np.arange(B, dtype=float)
        self.lefts = [x + (j - len(self.names) / 2) * width for j in range(len(self.names))]
        self.width = width
        for j, name in enumerate(self.names):
            bars = PolyCollection([], facecolors=COLORS.get(name, f"C{j}"), edgecolors="none")
            ax.add_collection(bars)
            self.bars.append(bars)
        ax.plot([-0.5, B - 0.5], [0, 0], color="#444444", lw=0.8)
        # few, short texts: each glyph costs ~0.3 ms per redraw on a slow CPU
        self.ytop = ax.text(-0.55, 1.0, "", ha="right", va="center", fontsize=7)
        fig.text(0.01, 0.52, "weight", rotation=90, ha="left", va="center", fontsize=7)
        x = 0.07
        for j, name in enumerate(self.names):  # the legend: each column's name in its colour
            fig.text(x, 0.87, name, color=COLORS.get(name, f"C{j}"), fontsize=8, va="bottom")
            x += 0.025 + 0.009 * len(name)
        self.title = fig.text(0.98, 0.87, "", ha="right", va="bottom", fontsize=9)
        self.shown = list(range(0, B, _label_step(B)))
        self.labels = [
            ax.text(
                i, -0.03, "", ha="center", va="top", fontsize=7, transform=ax.get_xaxis_transform()
            )
            for i in self.shown
        ]

    def update(
        self,
        lengths: Sequence[int],
        columns: Mapping[str, Sequence[float]],
        *,
        placement: Sequence[tuple[int, int]] | None = None,
        title: str = "",
        shade: str = "step",
    ) -> Figure:
        """Move the bars to ``columns[name]: [B]`` and relabel; returns the same Figure.

        ``placement[i] = (rank, micro_batch)``; ``shade`` says which of the two the bands show.
        """
        if shade not in SHADES:
            raise ValueError(f"shade must be one of {SHADES}, got {shade!r}")
        B = self.B
        top = max((max(v) for v in columns.values() if len(v)), default=1.0)
        top = top if top > 0 else 1.0
        for bars, left, name in zip(self.bars, self.lefts, self.names, strict=True):
            h = np.asarray(columns[name], dtype=float)
            y0 = np.zeros(B)
            bars.set_verts(
                np.stack(
                    [
                        np.stack([left, y0], 1),
                        np.stack([left, h], 1),
                        np.stack([left + self.width, h], 1),
                        np.stack([left + self.width, y0], 1),
                    ],
                    1,
                )
            )
        self.ax.set_ylim(0, top * 1.08)
        self.scale.set_segments([[(-0.5, top), (B - 0.5, top)]])
        self.ytop.set_position((-0.55, top))
        self.ytop.set_text(f"{top:.3g}")
        bands, colors = [], []
        if placement is not None:  # one band per run of samples in the same GA step (or rank)
            j, palette = (1, _BAND) if shade == "step" else (0, _RANK_BAND)
            start, h = 0, top * 1.08
            for i in range(1, B + 1):
                if i == B or placement[i][j] != placement[start][j]:
                    x0, x1 = start - 0.5, i - 0.5
                    bands.append([(x0, 0), (x0, h), (x1, h), (x1, 0)])
                    colors.append(palette[placement[start][j] % len(palette)])
                    start = i
        self.bands.set_verts(bands)
        self.bands.set_facecolors(colors or "none")
        for t, i in zip(self.labels, self.shown, strict=True):
            t.set_text(str(lengths[i]))
        self.title.set_text(title)
        return self.fig


def sample_weight_bars(
    lengths: Sequence[int],
    columns: Mapping[str, Sequence[float]],
    *,
    placement: Sequence[tuple[int, int]] | None = None,
    gaps: Mapping[str, float] | None = None,
    title: str = "",
    key: bool = True,
    figsize: tuple[float, float] = (7.5, 2.8),
    shade: str = "step",
) -> Figure:
    """Grouped bars: each sample's weight in the step under each column (e.g. full batch, naive).

    ``columns[name]: [B]`` per-sample weights; ``placement[i] = (rank, micro_batch)`` shades the
    samples of each GA step k alike (all ranks), or with ``shade="rank"`` the samples of each rank
    alike (rank 0 blue, 1 yellow, 2 grey, 3 pink); ``key`` adds a line saying what is drawn;
    ``gaps`` (optional) lists gradient distances to the full batch on that line. With
    ``key=False`` and no gaps it is the same picture as ``WeightBars(B, columns).update(...)``.
    """
    bars = WeightBars(len(lengths), list(columns), figsize=figsize)
    fig = bars.update(lengths, columns, placement=placement, title=title, shade=shade)
    notes = []
    if key:
        notes.append("under the bars: tokens per sample")
        if placement is not None and shade == "step":
            notes.append("bands: GA steps")
        elif placement is not None:
            ranks = sorted({r for r, _ in placement})
            names = ", ".join(f"{r} {_RANK_NAMES[r % len(_RANK_NAMES)]}" for r in ranks)
            notes.append(f"bands: ranks ({names})")
    if gaps:
        notes.append(
            "gradient L2 distance to full batch: "
            + ", ".join(f"{name}: {value:.1e}" for name, value in gaps.items())
        )
    if notes:
        fig.text(0.98, 0.01, "; ".join(notes), ha="right", va="bottom", fontsize=7)
    return fig


def gradient_gap_bars(
    gaps: Mapping[str, float], *, figsize: tuple[float, float] = (5.0, 2.0)
) -> Figure:
    """Horizontal bars of gradient distances on a log scale (float rounding vs the naive bug)."""
    fig = Figure(figsize=figsize)
    _gap_axis(fig.subplots(), gaps)
    fig.subplots_adjust(left=0.35, right=0.97, bottom=0.25, top=0.85)
    return fig
