"""Preference pairs as a signed weight matrix: one row per response, chosen above rejected.

Pure: numbers in, a ``matplotlib.figure.Figure`` out. Green cells (``W > 0``): gradient descent raises
that token's log-prob; pink (``W < 0``): it lowers it; grey: padding. Each row is labelled with its
length ``n`` and its total ``sum_t W``, the push the whole response gets.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from .reductions import PAD_COLOR

__all__ = ["pair_weights_figure"]

_CMAP = matplotlib.colormaps["PiYG"].with_extremes(bad=PAD_COLOR)


def pair_weights_figure(
    w_chosen: np.ndarray | Sequence[Sequence[float]],
    w_rejected: np.ndarray | Sequence[Sequence[float]],
    chosen_lengths: Sequence[int],
    rejected_lengths: Sequence[int],
    *,
    title: str = "",
    dpi: int = 80,
) -> Figure:
    """Heatmap of ``W`` for ``B`` pairs: rows ``chosen #0, rejected #0, chosen #1, ...``.

    ``w_chosen: [B, Tc]``, ``w_rejected: [B, Tr]`` (padding anywhere past each row's length is drawn
    grey); ``chosen_lengths``, ``rejected_lengths``: ``[B]`` token counts. The colour scale is symmetric
    about 0, so the sign reads off the colour.
    """
    wc, wr = np.asarray(w_chosen, dtype=np.float64), np.asarray(w_rejected, dtype=np.float64)
    pairs = len(chosen_lengths)
    if wc.ndim != 2 or wr.ndim != 2 or wc.shape[0] != pairs or wr.shape[0] != pairs:
        raise ValueError(
            f"w_chosen {wc.shape} and w_rejected {wr.shape} must be [B, T] with B = {pairs} pairs"
        )
    if len(rejected_lengths) != pairs:
        raise ValueError(f"{pairs} chosen lengths but {len(rejected_lengths)} rejected lengths")
    width = max(wc.shape[1], wr.shape[1], 1)
    grid = np.full((2 * pairs, width), np.nan)
    names = []
    for b in range(pairs):
        for k, (w, n, kind) in enumerate(
            ((wc, chosen_lengths[b], "chosen"), (wr, rejected_lengths[b], "rejected"))
        ):
            n = int(n)
            grid[2 * b + k, :n] = w[b, :n]
            names.append(f"#{b} {kind} n={n}  Σ={np.nansum(w[b, :n]):+.3g}")
    top = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.0
    top = top if top > 0 else 1.0
    height = 1.2 + 0.34 * 2 * pairs
    fig = Figure(figsize=(7.2, height), dpi=dpi)
    # fixed rectangles instead of a constrained layout, which costs most of a redraw; the left
    # margin fits the row names, the bottom one the axis label (both in inches, so any B fits)
    bottom, top_margin = 0.55 / height, 0.35 / height
    ax = fig.add_axes((0.31, bottom, 0.53, 1 - bottom - top_margin))
    cax = fig.add_axes((0.86, bottom, 0.02, 1 - bottom - top_margin))
    im = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=_CMAP,
        vmin=-top,
        vmax=top,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_yticks(range(2 * pairs), names, fontsize=8)
    ax.set_xticks(sorted({0, width - 1}))
    ax.set_xlabel("response token t")
    for b in range(1, pairs):
        ax.axhline(2 * b - 0.5, color="black", lw=1.0)
    fig.colorbar(im, cax=cax, label="W = -dL/d logp")
    if title:
        ax.set_title(title, fontsize=10)
    return fig
