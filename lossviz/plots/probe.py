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

from .reductions import draw_weights

__all__ = ["MODEL_COLORS", "ragged_matrix", "measured_vs_predicted", "version_table_figure"]

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
    Wm, pad = ragged_matrix(measured)
    Wp, _ = ragged_matrix(predicted)
    top = max(float(Wm.max()), float(Wp.max()), 1e-12)
    fig = Figure(figsize=(10.5, 1.4 + 0.3 * len(measured)), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=(3, 3, 2))
    for ax, W, title in zip(axes[:2], (Wm, Wp), titles, strict=True):
        im = draw_weights(ax, W, pad, title=title, vmax=top)
        ax.set_xlabel("trained token of the sample")
        ax.set_ylabel("sample")
    fig.colorbar(im, ax=list(axes[:2]), label="weight of the token", fraction=0.04, pad=0.02)
    x = np.arange(len(measured))
    ax = axes[2]
    ax.bar(x - 0.2, Wm.sum(1), width=0.4, color="#4a7fb5", label="measured")
    ax.bar(x + 0.2, Wp.sum(1), width=0.4, color="#f4a259", label="predicted")
    ax.set_xticks(x)
    ax.set_xlabel("sample")
    ax.set_title("each sample's total weight", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


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
