"""The table across frameworks as a picture: one row per framework setting, its measured rules.

A pure function: the table's rows in (dicts of strings and numbers, as
:func:`lossviz.trainers.frameworks.build_table` caches them), a ``matplotlib.figure.Figure`` out.
The three rule cells of a row are coloured by the lossviz model the measurement matched (the
colours of :data:`lossviz.plots.probe.MODEL_COLORS`), so a token mean reads green at a glance.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .probe import MODEL_COLORS

__all__ = ["COLUMNS", "FRAMEWORK_COLORS", "frameworks_figure"]

FRAMEWORK_COLORS = dict(MODEL_COLORS, naive_configured="#fc8d62", none="#dddddd", read="#ffffff")
_SHORT = {
    "global": "token mean of the step",
    "global_overcount": "token mean, +1 token per row",
    "local": "per-rank token mean",
    "local_overcount": "per-rank mean, +1 per row",
    "naive": "mean of micro-batch means",
    "naive_configured": "micro-batch mean / configured K",
    "unscaled": "micro-batch means, not / K",
    "sum": "sum / K",
    "none": "no lossviz model",
    "read": "read from the source, not measured here",
}
# (header, the row's text key, the row's model key or None for an uncoloured cell, wrap width)
COLUMNS = (
    ("framework", "framework", None, 14),
    ("setting", "label", None, 22),
    ("each token's weight\n(K micro-batches)", "weight_rule", "weight_model", 24),
    ("short last window\n(k < K batches)", "last_window_rule", "last_window_model", 26),
    ("2 ranks (DDP, gloo)", "dp_rule", "dp_model", 24),
    ("router aux loss\n(coefficient c)", "aux_rule", None, 22),
)
_WIDTHS = (1.3, 2.0, 2.2, 2.4, 2.2, 2.0)


def _cell_text(row: dict, key: str, width: int) -> str:
    text = str(row.get(key, ""))
    if key == "framework" and row.get("version"):
        text = f"{text} {row['version']}"
    return "\n".join(textwrap.wrap(text, width)) or "-"


def frameworks_figure(rows: Sequence[dict], *, title: str | None = None, dpi: int = 100) -> Figure:
    """The table as a grid of cells: one row per setting, the rule cells coloured by their model.

    ``rows``: dicts with ``framework``, ``version``, ``label``, ``weight_rule``/``weight_model``,
    ``last_window_rule``/``last_window_model``, ``dp_rule``/``dp_model`` (a model is a key of
    :data:`FRAMEWORK_COLORS`). Raises ``ValueError`` for no rows or an unknown model name.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("frameworks_figure needs at least one row of the table")
    for row in rows:
        for _, _, model_key, _ in COLUMNS:
            if model_key and row.get(model_key) not in FRAMEWORK_COLORS:
                raise ValueError(
                    f"row {row.get('framework')!r}: {model_key}={row.get(model_key)!r} is not one "
                    f"of the models {sorted(k for k in FRAMEWORK_COLORS if k)}"
                )
    texts = [[_cell_text(r, key, w) for _, key, _, w in COLUMNS] for r in rows]
    heights = [max(t.count("\n") + 1 for t in line) for line in texts]
    head = 2
    total_w = sum(_WIDTHS)
    row_h = 0.19  # inches per text line
    fig_h = (sum(heights) + head + 3.2) * row_h + 0.6
    fig = Figure(figsize=(total_w * 1.25, fig_h), dpi=dpi)
    ax = fig.add_axes((0.01, 0.16, 0.98, 0.74))
    n_lines = sum(heights) + head
    ax.set_xlim(0, total_w)
    ax.set_ylim(n_lines, 0)
    ax.set_axis_off()
    xs = [sum(_WIDTHS[:i]) for i in range(len(_WIDTHS) + 1)]
    for c, (header, _, _, _) in enumerate(COLUMNS):
        ax.add_patch(Rectangle((xs[c], 0), _WIDTHS[c], head, facecolor="#f0f0f0", edgecolor="w"))
        ax.text(xs[c] + 0.05, head / 2, header, va="center", ha="left", fontsize=8.5, weight="bold")
    y = head
    for r, row in enumerate(rows):
        for c, (_, _, model_key, _) in enumerate(COLUMNS):
            color = FRAMEWORK_COLORS[row[model_key]] if model_key else "white"
            ax.add_patch(
                Rectangle(
                    (xs[c], y), _WIDTHS[c], heights[r], facecolor=color, alpha=0.45, edgecolor="w"
                )
            )
            ax.text(xs[c] + 0.05, y + heights[r] / 2, texts[r][c], va="center", fontsize=8)
        ax.plot([0, total_w], [y, y], color="#bbbbbb", lw=0.6)
        y += heights[r]
    used = sorted(
        {row[k] for row in rows for _, _, k, _ in COLUMNS if k}, key=list(FRAMEWORK_COLORS).index
    )
    fig.legend(
        handles=[Patch(facecolor=FRAMEWORK_COLORS[m], alpha=0.45, label=_SHORT[m]) for m in used],
        loc="lower center",
        ncol=min(len(used), 4),
        fontsize=8,
        frameon=False,
        title="the lossviz model each measured cell matches (within 1e-6)",
        title_fontsize=8,
    )
    fig.suptitle(
        title or "What each framework does to a token's weight: one step measured by the probe",
        fontsize=10,
    )
    return fig
