"""Pictures of a measured trainer step: measured vs predicted ``W``, and the version table.

Pure functions: numbers in, a ``matplotlib.figure.Figure`` out. Weights come as one list per
sample (the weight of each of its trained tokens), as :func:`lossviz.trainers.hf_trainer.measure`
returns them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from .moves import FixedScaleBar, axis_layers, set_clim, set_extent, set_xlim, set_ylim
from .reductions import WEIGHT_CMAP, draw_weights, nice_ceiling

__all__ = [
    "MODEL_COLORS",
    "ragged_matrix",
    "MeasuredVsPredictedPicture",
    "measured_vs_predicted",
    "version_table_figure",
]

# One colour per lossviz model a Trainer step can follow (the version table's cells).
MODEL_COLORS = {
    "global": "#1b9e77",
    "global_overcount": "#a6dba0",
    "local": "#7570b3",
    "local_overcount": "#c2a5cf",
    "naive": "#d95f02",
    "unscaled": "#e7298a",
    "sum": "#666666",
    None: "#dddddd",
}
_MEASURED, _PREDICTED = "#4a7fb5", "#f4a259"
_SHORT = {
    "global": "global token mean",
    "global_overcount": "global mean, +1/row",
    "local": "per-rank token mean",
    "local_overcount": "per-rank mean, +1/row",
    "naive": "mean of means",
    "unscaled": "means, not / GA",
    "sum": "sum / GA",
    None: "no lossviz model",
}


def ragged_matrix(rows: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """``(W, pad)``: one row per sample, right-padded to the longest; ``pad`` is True past its end."""
    T = max(len(r) for r in rows)
    W = np.zeros((len(rows), T))
    pad = np.ones((len(rows), T), dtype=bool)
    for b, r in enumerate(rows):
        W[b, : len(r)] = r
        pad[b, : len(r)] = False
    return W, pad


class MeasuredVsPredictedPicture:
    """Measured and predicted ``W`` heatmaps on one colour scale, and each sample's total weight.

    Built once, with fixed panel rectangles (no layout engine, which costs more than the
    drawing): labelled axes, a colour bar, a legend of the bars, titles. :meth:`update` shows any
    number of samples and tokens; what every update changes (the two images, the bars) is listed
    in ``dynamic`` and what changes now and then (each axis with its ticks and label, the colour
    bar's ticks, the panel titles) in :meth:`layers`, so an explorer's
    :class:`~lossviz.widgets.Canvas` draws the colour ramp and the legend once, each axis once per
    range, and blits them. ``height`` (inches) is the figure's; an explorer keeps one height for
    every batch so that one picture serves them all. ``labels`` name the two bars in the legend.
    """

    def __init__(
        self,
        height: float = 4.2,
        *,
        dpi: int = 80,
        labels: tuple[str, str] = ("measured", "predicted"),
    ) -> None:
        width = 11.0  # inches
        self.fig = fig = Figure(figsize=(width, height), dpi=dpi)
        bottom, top = 0.62 / height, 1 - 0.6 / height  # tick labels + axis label; title, key

        def rect(x: float, w: float) -> tuple[float, float, float, float]:
            return (x / width, bottom, w / width, top - bottom)

        # inches across: heatmap, heatmap, colour bar and its labels, then the bars and theirs
        self.heat = [fig.add_axes(rect(0.6, 3.05)), fig.add_axes(rect(3.85, 3.05))]
        self.bar_ax = ax = fig.add_axes(rect(8.85, 2.0))
        cax = fig.add_axes(rect(7.05, 0.13))
        empty = np.zeros((1, 1))
        self.images = [draw_weights(a, empty, empty > 0, vmax=1.0) for a in self.heat]
        # Axis labels and titles at fixed places (tick labels here are at most two digits wide):
        # placing them from the tick labels' extents costs a third of every full draw.
        below = -0.29 / ((top - bottom) * height)  # under the tick labels, in axes coordinates
        for a in self.heat:
            a.set_xlabel("trained token of the sample")
            a.xaxis.set_label_coords(0.5, below)
            # integer ticks, even for one sample (the default asks for two ticks, so 0.5 steps)
            a.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, min_n_ticks=1))
            # few tick labels: text is most of a full draw (one per new batch or GA setting)
            a.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            a.set_title(" ", fontsize=10, y=1.0)
        self.heat[0].set_ylabel("sample")
        self.heat[0].yaxis.set_label_coords(-0.33 / 3.05, 0.5)
        self.heat[1].set_ylabel("")
        self.heat[1].tick_params(labelleft=False)  # the same rows as the left one, beside it
        self.scale = FixedScaleBar(fig, cax, WEIGHT_CMAP, "weight of the token")
        self.scale.show(1.0)
        cax.yaxis.set_label_coords(1 + 0.55 / 0.13, 0.5)  # right of labels such as 0.025
        self.bars = [
            PolyCollection([], facecolors=color, edgecolors="none")
            for color in (_MEASURED, _PREDICTED)
        ]
        for bars in self.bars:
            ax.add_collection(bars)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, min_n_ticks=1))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))  # short labels: 0.05, not 0.025
        ax.set_xlabel("sample")
        ax.xaxis.set_label_coords(0.5, below)
        ax.set_ylabel("total weight")
        ax.yaxis.set_label_coords(-0.5 / 2.0, 0.5)  # left of labels such as 0.025
        ax.set_title("each sample's total weight", fontsize=10, pad=17, y=1.0)
        ax.grid(axis="y", color="#dddddd", lw=0.6)
        ax.set_axisbelow(True)
        key = [
            Patch(color=c, label=t) for c, t in zip((_MEASURED, _PREDICTED), labels, strict=True)
        ]
        # between the title and the bars, where no bar can hide it
        ax.legend(
            handles=key,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=2,
            fontsize=8,
            frameon=False,
            borderaxespad=0.1,
            handlelength=1.2,
        )
        # a word on the left heatmap (e.g. "nothing measured yet"), drawn per update
        self.notice = self.heat[0].text(
            0.5,
            0.5,
            "",
            transform=self.heat[0].transAxes,
            ha="center",
            va="center",
            fontsize=10,
            bbox={"facecolor": "white", "edgecolor": "#888888", "alpha": 0.9},
            visible=False,
        )
        # drawn on every update: the cells, the bars, the frames over them, the word on the cells
        self.dynamic = [
            *self.images,
            *self.bars,
            *(spine for a in (*self.heat, ax) for spine in a.spines.values()),
            self.notice,
        ]

    def static_key(self) -> tuple:
        """Nothing outside ``dynamic`` and the layers moves: one background per picture."""
        return ()

    def layers(self) -> list[tuple[str, object, list]]:
        """Each axis's ticks (once per range), each axis label and title (once per text).

        A new sample count redraws the heatmaps' rows and the bars' axes, not the tokens' axes,
        the colour bar, a label or a title.
        """
        out = []
        for i, a in enumerate(self.heat):
            out += axis_layers(f"heat{i}.x", a.xaxis, (a.get_xlim(), a.get_xlabel()))
            out += axis_layers(f"heat{i}.y", a.yaxis, a.get_ylim())
            out.append((f"title{i}", a.title.get_text(), [a.title]))
        out += axis_layers("bars.x", self.bar_ax.xaxis, self.bar_ax.get_xlim())
        out += axis_layers("bars.y", self.bar_ax.yaxis, self.bar_ax.get_ylim())
        out += axis_layers("scale", self.scale.ax.yaxis, self.scale.top)
        return out

    def update(
        self,
        measured: Sequence[Sequence[float]],
        predicted: Sequence[Sequence[float]],
        titles: tuple[str, str] = ("measured (probe)", "predicted (lossviz)"),
        *,
        widths: str = "tokens",
        notice: str = "",
    ) -> Figure:
        """Show ``measured`` and ``predicted`` (per sample, each trained token's weight).

        ``widths="tokens"``: one column per token (a short sample is short); ``"sample"``: every
        sample stretched over the full width, its tokens in equal parts (a 2-token sample beside a
        300-token one stays visible); ``"auto"``: ``"sample"`` when the longest sample has at
        least 8 times the tokens of the shortest. ``notice``: a word drawn on the left heatmap.
        """
        if len(measured) != len(predicted) or not measured:
            raise ValueError(
                "measured and predicted need the same samples (at least one); got "
                f"{len(measured)} and {len(predicted)} rows"
            )
        if widths not in ("tokens", "sample", "auto"):
            raise ValueError(f"widths must be 'tokens', 'sample' or 'auto', got {widths!r}")
        sizes = [max(len(a), len(b)) for a, b in zip(measured, predicted, strict=True)]
        if widths == "auto":
            widths = "sample" if max(sizes) >= 8 * max(min(sizes), 1) else "tokens"
        totals = tuple(np.array([float(np.sum(r)) for r in rows]) for rows in (measured, predicted))
        if widths == "sample":
            Wm, pad_m = _stretched(measured, sizes)
            Wp, pad_p = _stretched(predicted, sizes)
            T = Wm.shape[1]
            xlabel = "position in the sample (rows stretched)"
        else:
            T = max(max(sizes), 1)
            Wm, pad_m = _ragged(measured, T)
            Wp, pad_p = _ragged(predicted, T)
            xlabel = "trained token of the sample"
        B = len(measured)
        # a rounded top: the colour bar keeps its ticks while the weights move a little
        top = nice_ceiling(max(float(Wm.max()), float(Wp.max()), 1e-12))
        for im, W, pad, title, ax in zip(
            self.images, (Wm, Wp), (pad_m, pad_p), titles, self.heat, strict=True
        ):
            im.set_data(np.ma.masked_array(W, mask=pad))
            set_extent(im, (-0.5, T - 0.5, B - 0.5, -0.5))  # sample 0 on top
            set_clim(im, 0.0, top)  # the colour bar is not tied to it: nothing else is redrawn
            ax.title.set_text(title)
            if ax.get_xlabel() != xlabel:
                ax.set_xlabel(xlabel)
                if widths == "sample":  # start and end of every sample, not token numbers
                    ax.set_xticks([-0.5, T / 2 - 0.5, T - 0.5], ["start", "middle", "end"])
                else:
                    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
                    ax.xaxis.set_major_formatter(ScalarFormatter())
        self.scale.show(top)
        self.notice.set_text(notice)
        self.notice.set_visible(bool(notice))
        x = np.arange(B, dtype=float)
        for bars, h, left in zip(self.bars, totals, (x - 0.4, x), strict=True):
            zero = np.zeros(B)
            corners = [(left, zero), (left, h), (left + 0.4, h), (left + 0.4, zero)]
            bars.set_verts(np.stack([np.stack(c, 1) for c in corners], 1))
        set_xlim(self.bar_ax, -0.6, B - 0.4)
        set_ylim(self.bar_ax, 0.0, nice_ceiling(1.05 * max(float(t.max()) for t in totals)))
        return self.fig


# columns of a stretched row: divisible by every length up to 10, so short samples split evenly
_STRETCH = 2520


def _stretched(
    rows: Sequence[Sequence[float]], sizes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(W, pad)`` with every row over the full width: token j of an ``n``-token row spans
    columns ``[j C / n, (j + 1) C / n)`` (``C`` columns, at most 2520); tokens a row lacks are
    padding."""
    C = max(min(_STRETCH, int(np.lcm.reduce([max(n, 1) for n in sizes]))), max(sizes), 1)
    W = np.zeros((len(rows), C))
    pad = np.ones((len(rows), C), dtype=bool)
    cols = np.arange(C)
    for b, (r, n) in enumerate(zip(rows, sizes, strict=True)):
        if n == 0 or not len(r):
            continue
        j = cols * n // C  # the token under each column
        have = j < len(r)
        W[b, have] = np.asarray(r, dtype=float)[j[have]]
        pad[b, have] = False
    return W, pad


def _ragged(rows: Sequence[Sequence[float]], T: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ragged_matrix` padded on to ``T`` columns."""
    W, pad = ragged_matrix(rows)
    fill = T - W.shape[1]
    return np.pad(W, ((0, 0), (0, fill))), np.pad(pad, ((0, 0), (0, fill)), constant_values=True)


def measured_vs_predicted(
    measured: Sequence[Sequence[float]],
    predicted: Sequence[Sequence[float]],
    *,
    titles: tuple[str, str] = ("measured (probe)", "predicted (lossviz)"),
    labels: tuple[str, str] = ("measured", "predicted"),
    dpi: int = 80,
    widths: str = "auto",
) -> Figure:
    """Two ``W`` heatmaps side by side on one colour scale, and each sample's total weight.

    ``measured, predicted``: per sample, the weight of each trained token (rows may differ in
    length; grey past a sample's end). ``widths`` as in :meth:`MeasuredVsPredictedPicture.update`
    (``"auto"``: samples of very different lengths are each stretched to the full width). The
    third panel puts both totals per sample as bars, named in its legend by ``labels``.
    The figure is 1.75 + 0.3 inches per sample high.
    """
    picture = MeasuredVsPredictedPicture(1.75 + 0.3 * len(measured), dpi=dpi, labels=labels)
    return picture.update(measured, predicted, titles, widths=widths)


def version_table_figure(table: dict, dpi: int = 80) -> Figure:
    """The version table as a grid: one row per transformers version, one column per measurement.

    ``table`` as :func:`lossviz.trainers.versions.load_table` returns it. Each cell is coloured by the
    lossviz model the measured step matched, and a key under the grid names every colour shown;
    rows that could not be measured say why.
    """
    rows = table["rows"]
    cols = [
        ("ga", "GA 2, batch 2"),
        ("compute_loss", "compute_loss drops\nnum_items_in_batch"),
        ("ranks", "2 ranks, default\naverage_tokens_across_devices"),
    ]
    models = list(MODEL_COLORS)
    grid = np.zeros((len(rows), len(cols)), dtype=int)
    key_rows = 1.0  # inches under the grid for the colour key
    fig = Figure(figsize=(11.0, 1.5 + key_rows + 0.55 * len(rows)), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    texts = []
    for i, row in enumerate(rows):
        for j, (key, _) in enumerate(cols):
            cell = row.get(key) if row["status"] == "measured" else None
            model = cell["model"] if cell else None
            grid[i, j] = models.index(model)
            if cell:
                label = _SHORT[model]
                if key == "ranks":
                    atad = cell["average_tokens_across_devices"]
                    label += "\n(option absent)" if atad is None else f"\n(average_tokens={atad})"
            else:
                label = row["status"] if j == 0 else ""
            texts.append((j, i, label))
    cmap = ListedColormap([MODEL_COLORS[m] for m in models])
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(models) - 0.5, aspect="auto")
    for j, i, label in texts:
        ax.text(j, i, label, ha="center", va="center", fontsize=10.5)
    ax.set_xticks(range(len(cols)), [c[1] for c in cols], fontsize=11)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(rows)), [f"transformers {r['version']}" for r in rows], fontsize=11)
    ax.set_xticks(np.arange(len(cols) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="minor", length=0)
    shown = [m for m in models if (grid == models.index(m)).any()]
    key = [Patch(facecolor=MODEL_COLORS[m], edgecolor="#999999", label=_MEANING[m]) for m in shown]
    fig.legend(
        handles=key,
        loc="outside lower center",
        ncol=2,
        fontsize=10.5,
        frameon=False,
        title="colour: the lossviz model the measured step matched",
        title_fontsize=11,
    )
    return fig


# the colour key's words: what each model means for the learner
_MEANING = {
    "global": "global token mean (every trained token 1/N)",
    "global_overcount": "global mean, one extra token counted per row",
    "local": "each rank's own token mean",
    "local_overcount": "per-rank mean, one extra token counted per row",
    "naive": "mean of micro-batch means",
    "unscaled": "micro-batch means, not divided by GA",
    "sum": "summed loss / GA",
    None: "not measured (see the row's status)",
}
