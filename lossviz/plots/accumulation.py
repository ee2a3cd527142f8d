"""Plots for gradient accumulation and data parallelism: per-sample weights, gradient gaps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .moves import AxisTicks, axis_layers, set_xlim, set_ylim
from .reductions import nice_ceiling

__all__ = ["COLORS", "WeightBars", "sample_weight_bars", "gradient_gap_bars"]

COLORS = {"full batch": "#444444", "naive": "#d95f02", "global": "#1b9e77", "sum": "#7570b3"}
_BAND = ("#ececec", "#ffffff")  # alternating GA-step backgrounds
_RANK_BAND = ("#dce8f5", "#f7efc2", "#e4e4e4", "#f4dcea")  # rank 0, 1, 2, 3 (then again)
_RANK_NAMES = ("blue", "yellow", "grey", "pink")
SHADES = ("step", "rank")
MAX_LABELS = 16  # more sample labels than this would overlap at the figure's width


def _gap_axis(
    ax, gaps: Mapping[str, float], floor: float = 1e-12, bounds: Mapping[str, float] | None = None
) -> None:
    # log10 on a linear axis: a log-scaled axis costs many minor ticks on every redraw
    bounds = dict(bounds or {})
    names = list(gaps)
    # a bounded gap is float rounding whose digits vary by machine: draw and label its bound
    shown = {n: bounds.get(n, gaps[n]) for n in names}
    logs = [math.log10(max(float(shown[n]), floor)) for n in names]
    lo = math.log10(floor)
    colors = [COLORS.get(n.split()[0], "#999999") for n in names]
    bars = ax.barh(range(len(names)), [v - lo for v in logs], left=lo, color=colors)
    for bar, n in zip(bars, names, strict=True):
        if n in bounds:
            bar.set_hatch("///")
            bar.set_alpha(0.6)
    text = {n: f"< {bounds[n]:.0e}" if n in bounds else f"{gaps[n]:.1e}" for n in names}
    ax.set_yticks(range(len(names)), [f"{n}\n{text[n]}" for n in names], fontsize=7)
    ax.set_xlim(lo, max(1.0, max(logs) + 1))
    ax.set_xticks(range(int(lo), int(max(1.0, max(logs) + 1)) + 1, 3))
    ax.invert_yaxis()
    ax.set_xlabel("log10 L2 distance to full-batch grad", fontsize=7)
    ax.set_title("tiny model's gradient", fontsize=8)
    ax.tick_params(labelsize=7)


def _label_step(B: int) -> int:
    return max(1, math.ceil(B / MAX_LABELS))


class WeightBars:
    """A reusable grouped-bar figure for the given columns, updated in place for any sample count.

    Built once per set of columns: labelled axes, a legend of the columns and of the bands.
    :meth:`update` moves the bars (``dynamic``, with the frame over them); the bands with the y
    axis, the x axis, the title and the legend are :meth:`layers`, so an explorer's
    :class:`~lossviz.widgets.Canvas` draws each of them once per state and blits the rest.
    """

    def __init__(self, names: Sequence[str], figsize: tuple[float, float] = (8.5, 3.4)) -> None:
        self.names = list(names)
        self.fig = fig = Figure(figsize=figsize)
        self.ax = ax = fig.add_axes((0.1, 0.27, 0.88, 0.53))
        ax.set_ylabel("weight in the step")
        ax.yaxis.set_label_coords(-0.06, 0.5)  # fixed, left of labels such as 0.25
        ax.set_xlabel("sample (its trained tokens)")
        ax.xaxis.set_label_coords(0.5, -0.3)  # fixed, under two-line labels
        ax.grid(axis="y", color="#dddddd", lw=0.6)
        ax.set_axisbelow(True)
        # GA-step (or rank) bands behind the bars
        self.bands = PolyCollection([], edgecolors="none", zorder=0)
        ax.add_collection(self.bands)
        self.bars = []
        for j, name in enumerate(self.names):
            bars = PolyCollection([], facecolors=COLORS.get(name, f"C{j}"), edgecolors="none")
            ax.add_collection(bars)
            self.bars.append(bars)
        self.title = ax.set_title("", fontsize=11, y=1.0)
        self.legend = None
        self.shade = None
        self._band_key = ()
        self._names: tuple[str, ...] = ()
        # the frame is drawn over the bars and the bands, as a full draw does
        self.dynamic = [*self.bars, *ax.spines.values()]

    def static_key(self) -> tuple:
        """Nothing outside ``dynamic`` and the layers moves: one background per picture."""
        return ()

    def layers(self) -> list[tuple[str, object, list]]:
        """The bands under the y axis's grid (one layer: the grid is drawn over the bands), the x
        axis, the title and the legend, each once per state."""
        ax = self.ax
        return [
            ("bands+y", (self._band_key, ax.get_ylim()), [self.bands, AxisTicks(ax.yaxis)]),
            ("y.label", ax.yaxis.label.get_text(), [ax.yaxis.label]),
            *axis_layers("x", ax.xaxis, (ax.get_xlim(), self._names)),
            ("title", self.title.get_text(), [self.title]),
            ("legend", self.shade, [self.legend] if self.legend is not None else []),
        ]

    def _legend(self, shade: str | None, ranks: int) -> None:
        """Columns in their colours, then what the bands mean (GA steps or ranks)."""
        if self.legend is not None and self.shade == (shade, ranks):
            return
        if self.legend is not None:
            self.legend.remove()
        handles = [Patch(color=COLORS.get(n, f"C{j}"), label=n) for j, n in enumerate(self.names)]
        if shade == "step":
            handles.append(Patch(facecolor=_BAND[0], edgecolor="#bbbbbb", label="bands: GA steps"))
        elif shade == "rank":
            handles += [
                Patch(color=_RANK_BAND[r % len(_RANK_BAND)], label=f"rank {r}")
                for r in range(ranks)
            ]
        self.legend = self.fig.legend(
            handles=handles,
            loc="upper center",
            ncol=len(handles),
            frameon=False,
            fontsize=9,
            bbox_to_anchor=(0.54, 1.0),
        )
        self.shade = (shade, ranks)

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
        B = len(lengths)
        top = max((max(v) for v in columns.values() if len(v)), default=1.0)
        top = nice_ceiling(1.05 * top) if top > 0 else 1.0
        width = 0.8 / max(len(self.names), 1)
        x = np.arange(B, dtype=float)
        for j, (bars, name) in enumerate(zip(self.bars, self.names, strict=True)):
            left = x + (j - len(self.names) / 2) * width
            h = np.asarray(columns[name], dtype=float)
            y0 = np.zeros(B)
            bars.set_verts(
                np.stack(
                    [
                        np.stack([left, y0], 1),
                        np.stack([left, h], 1),
                        np.stack([left + width, h], 1),
                        np.stack([left + width, y0], 1),
                    ],
                    1,
                )
            )
        set_xlim(self.ax, -0.5, B - 0.5)
        set_ylim(self.ax, 0, top)
        bands, colors = [], []
        if placement is not None:  # one band per run of samples in the same GA step (or rank)
            j, palette = (1, _BAND) if shade == "step" else (0, _RANK_BAND)
            start = 0
            for i in range(1, B + 1):
                if i == B or placement[i][j] != placement[start][j]:
                    x0, x1 = start - 0.5, i - 0.5
                    bands.append([(x0, 0), (x0, top), (x1, top), (x1, 0)])
                    colors.append(palette[placement[start][j] % len(palette)])
                    start = i
        self.bands.set_verts(bands)
        self.bands.set_facecolors(colors or "none")
        self._band_key = (B, tuple(tuple(map(tuple, b)) for b in bands), tuple(colors))
        shown = range(0, B, _label_step(B))
        self._names = tuple(f"{i}\n({lengths[i]})" for i in shown)
        self.ax.set_xticks(shown, self._names)
        self.title.set_text(title)
        ranks = len({r for r, _ in placement}) if placement is not None else 0
        self._legend(shade if placement is not None else None, ranks)
        return self.fig


def sample_weight_bars(
    lengths: Sequence[int],
    columns: Mapping[str, Sequence[float]],
    *,
    placement: Sequence[tuple[int, int]] | None = None,
    gaps: Mapping[str, float] | None = None,
    title: str = "",
    key: bool = True,
    figsize: tuple[float, float] = (8.5, 3.4),
    shade: str = "step",
) -> Figure:
    """Grouped bars: each sample's weight in the step under each column (e.g. full batch, naive).

    ``columns[name]: [B]`` per-sample weights; ``placement[i] = (rank, micro_batch)`` shades the
    samples of each GA step k alike (all ranks), or with ``shade="rank"`` the samples of each rank
    alike (rank 0 blue, 1 yellow, 2 grey, 3 pink); ``key`` adds a line saying what is drawn;
    ``gaps`` (optional) lists gradient distances to the full batch on that line. With
    ``key=False`` and no gaps it is the same picture as ``WeightBars(columns).update(...)``.
    """
    bars = WeightBars(list(columns), figsize=figsize)
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
        fig.text(0.98, 0.01, "; ".join(notes), ha="right", va="bottom", fontsize=8)
    return fig


def gradient_gap_bars(
    gaps: Mapping[str, float],
    *,
    figsize: tuple[float, float] = (5.0, 2.0),
    bounds: Mapping[str, float] | None = None,
) -> Figure:
    """Horizontal bars of gradient distances on a log scale (float rounding vs the naive bug).

    ``bounds[name]``: a bound the gap stays under on every machine (float rounding); that bar is
    drawn hatched up to the bound and labelled ``< bound``, never with machine-dependent digits.
    """
    unknown = set(bounds or {}) - set(gaps)
    if unknown:
        raise ValueError(f"bounds names {sorted(unknown)} that are not in gaps: {list(gaps)}")
    fig = Figure(figsize=figsize)
    _gap_axis(fig.subplots(), gaps, bounds=bounds)
    fig.subplots_adjust(left=0.35, right=0.97, bottom=0.25, top=0.85)
    return fig
