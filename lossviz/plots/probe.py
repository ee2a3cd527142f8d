"""Pictures of a measured trainer step: measured vs predicted ``W``, and the version table.

Pure functions: numbers in, a ``matplotlib.figure.Figure`` out. Weights come as one list per
sample (the weight of each of its trained tokens), as :func:`lossviz.trainer_probe.measure`
returns them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .reductions import draw_weights, nice_ceiling

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

    Built once for ``B`` samples of up to ``T`` trained tokens, with fixed panel rectangles (no
    layout engine, which costs more than the drawing): labelled axes, a colour bar, a legend of
    the bars. :meth:`update` puts new weights in; the two images and the bars are ``dynamic``,
    ``static_key()`` names the rest (the colour scale, the bar axis's top, the panel titles), so
    an explorer's :class:`~lossviz.widgets.Canvas` redraws only the cells and bars while those
    hold.
    """

    def __init__(self, B: int, T: int, *, dpi: int = 80) -> None:
        if B < 1 or T < 1:
            raise ValueError(f"need at least one sample and one token, got B={B}, T={T}")
        self.B, self.T = B, T
        width, height = 11.0, 1.75 + 0.3 * B  # inches: a row per sample stays 0.3 high
        self.fig = fig = Figure(figsize=(width, height), dpi=dpi)
        bottom, top = 0.62 / height, 1 - 0.6 / height  # tick labels + axis label; title, key

        def rect(x: float, w: float) -> tuple[float, float, float, float]:
            return (x / width, bottom, w / width, top - bottom)

        heat = [fig.add_axes(rect(0.6, 3.0)), fig.add_axes(rect(4.15, 3.0))]
        self.bar_ax = ax = fig.add_axes(rect(8.8, 2.05))
        cax = fig.add_axes(rect(7.25, 0.13))
        empty = np.zeros((B, T))
        self.images = [draw_weights(a, empty, empty > 0, vmax=1.0) for a in heat]
        for a in heat:
            a.set_xlabel("trained token of the sample")
            a.set_ylabel("sample")
            # integer ticks, even for one sample (the default asks for two ticks, so 0.5 steps)
            a.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, min_n_ticks=1))
        fig.colorbar(self.images[0], cax=cax, label="weight of the token")
        x = np.arange(B)
        self.bars = [
            *ax.bar(x - 0.2, np.zeros(B), width=0.4, color="#4a7fb5", label="measured"),
            *ax.bar(x + 0.2, np.zeros(B), width=0.4, color="#f4a259", label="predicted"),
        ]
        ax.set_xlim(-0.6, B - 0.4)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True, min_n_ticks=1))
        ax.set_xlabel("sample")
        ax.set_ylabel("total weight")
        ax.set_title("each sample's total weight", fontsize=10, pad=17)
        ax.grid(axis="y", color="#dddddd", lw=0.6)
        ax.set_axisbelow(True)
        # between the title and the bars, where no bar can hide it
        ax.legend(
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=2,
            fontsize=8,
            frameon=False,
            borderaxespad=0.1,
            handlelength=1.2,
        )
        self.heat = heat
        self.dynamic = [*self.images, *self.bars]

    def static_key(self) -> tuple:
        """The colour scale, the bar axis's range and the titles: all that moves outside ``dynamic``."""
        return (
            self.images[0].get_clim(),
            self.bar_ax.get_ylim(),
            tuple(a.get_title() for a in self.heat),
        )

    def update(
        self,
        measured: Sequence[Sequence[float]],
        predicted: Sequence[Sequence[float]],
        titles: tuple[str, str] = ("measured (probe)", "predicted (lossviz)"),
    ) -> Figure:
        """Show ``measured`` and ``predicted`` (per sample, each trained token's weight)."""
        if len(measured) != self.B or len(predicted) != self.B:
            raise ValueError(
                f"this picture holds {self.B} samples; got {len(measured)} measured and "
                f"{len(predicted)} predicted rows"
            )
        Wm, pad_m = _ragged(measured, self.T)
        Wp, pad_p = _ragged(predicted, self.T)
        top = max(float(Wm.max()), float(Wp.max()), 1e-12)
        for im, W, pad, title, ax in zip(
            self.images, (Wm, Wp), (pad_m, pad_p), titles, self.heat, strict=True
        ):
            im.set_data(np.ma.masked_array(W, mask=pad))
            im.set_clim(0.0, top)
            ax.set_title(title, fontsize=10)
        for bar, h in zip(self.bars, [*Wm.sum(1), *Wp.sum(1)], strict=True):
            bar.set_height(h)
        totals = max(float(Wm.sum(1).max()), float(Wp.sum(1).max()))
        self.bar_ax.set_ylim(0.0, nice_ceiling(1.05 * totals))  # a stable top: blits hold
        return self.fig


def _ragged(rows: Sequence[Sequence[float]], T: int) -> tuple[np.ndarray, np.ndarray]:
    W, pad = ragged_matrix(rows)
    if W.shape[1] > T:
        raise ValueError(f"a row has {W.shape[1]} tokens; this picture holds {T}")
    fill = T - W.shape[1]
    return np.pad(W, ((0, 0), (0, fill))), np.pad(pad, ((0, 0), (0, fill)), constant_values=True)


def measured_vs_predicted(
    measured: Sequence[Sequence[float]],
    predicted: Sequence[Sequence[float]],
    *,
    titles: tuple[str, str] = ("measured (probe)", "predicted (lossviz)"),
    dpi: int = 80,
) -> Figure:
    """Two ``W`` heatmaps side by side on one colour scale, and each sample's total weight.

    ``measured, predicted``: per sample, the weight of each trained token (rows may differ in
    length; grey past a sample's end). The third panel puts both totals per sample as bars.
    """
    if len(measured) != len(predicted) or not measured:
        raise ValueError(
            f"measured and predicted need the same samples (at least one); got {len(measured)} "
            f"and {len(predicted)} rows"
        )
    T = max(len(r) for r in [*measured, *predicted])
    return MeasuredVsPredictedPicture(len(measured), max(T, 1), dpi=dpi).update(
        measured, predicted, titles
    )


def version_table_figure(table: dict, dpi: int = 80) -> Figure:
    """The version table as a grid: one row per transformers version, one column per measurement.

    ``table`` as :func:`lossviz.version_table.load_table` returns it. Each cell is coloured by the
    lossviz model the measured step matched; rows that could not be measured say why.
    """
    rows = table["rows"]
    cols = [
        ("ga", "GA 2, batch 2"),
        ("compute_loss", "compute_loss drops\nnum_items_in_batch"),
        ("ranks", "2 ranks, default\naverage_tokens_across_devices"),
    ]
    models = list(MODEL_COLORS)
    grid = np.zeros((len(rows), len(cols)), dtype=int)
    fig = Figure(figsize=(9.0, 0.9 + 0.42 * len(rows)), dpi=dpi, layout="constrained")
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
        ax.text(j, i, label, ha="center", va="center", fontsize=7.5)
    ax.set_xticks(range(len(cols)), [c[1] for c in cols], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(rows)), [f"transformers {r['version']}" for r in rows], fontsize=8)
    ax.set_xticks(np.arange(len(cols) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="minor", length=0)
    return fig
