"""Pictures of a reduction: the weight matrix ``W[b, t]``, each sample's share, the loss it gives.

Pure functions: tensors or numbers in, a ``matplotlib.figure.Figure`` out (no pyplot state). Padding
(``sample_ids == -1``, or ``mask == 0`` when no ids are given) is drawn grey, so it never looks like a
token with weight 0 (white): a position a sample owns but does not train, such as the first token of a
packed piece, stays white.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = [
    "PAD_COLOR",
    "draw_weights",
    "draw_sample_shares",
    "weights_figure",
    "reduction_figure",
]

PAD_COLOR = "#b8b8b8"
_CMAP = ListedColormap(matplotlib.colormaps["Blues"](np.linspace(0.0, 0.95, 256))).with_extremes(
    bad=PAD_COLOR
)


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _padding(mask: torch.Tensor, sample_ids: torch.Tensor | None) -> np.ndarray:
    """``[B, T]`` bool: True where no sample sits (grey in every picture)."""
    if sample_ids is not None:
        return _numpy(sample_ids) < 0
    return _numpy(mask) <= 0


def draw_weights(
    ax,
    w: torch.Tensor,
    pad: np.ndarray,
    *,
    title: str = "",
    vmax: float | None = None,
    annotate: bool = False,
):
    """Heatmap of ``W: [B, T]`` on ``ax``; ``pad: [B, T]`` bool cells are grey. Returns the image.

    Only the first and last positions get a tick: tick labels are most of a redraw's cost.
    """
    values = _numpy(w)
    shown = np.ma.masked_array(values, mask=pad)
    top = float(vmax if vmax is not None else (values.max() if values.size else 1.0)) or 1.0
    im = ax.imshow(shown, cmap=_CMAP, vmin=0.0, vmax=top, aspect="auto", interpolation="nearest")
    rows, cols = values.shape
    if annotate:
        for (b, t), v in np.ndenumerate(values):
            if not pad[b, t]:
                color = "white" if v > 0.6 * top else "black"
                ax.text(t, b, f"{v:.2g}", ha="center", va="center", fontsize=7, color=color)
    ax.set_yticks(range(rows))
    ax.set_xticks(sorted({0, cols - 1}))
    ax.set_xlabel("position t")
    ax.set_ylabel("row b")
    if title:
        ax.set_title(title, fontsize=10)
    return im


def draw_sample_shares(ax, shares: Sequence[float], token_counts: Sequence[float]) -> None:
    """Bars of each sample's share of the loss, with the two reference levels.

    "every sample equal" is the dashed line ``1/B``; "every token equal" is the black tick ``n_b / N``
    on each bar (token mean's share). The axis is off and everything is labelled in place: ticks and
    a legend would cost half of a redraw, and the explorer redraws on every slider step.
    """
    shares = np.asarray(shares, dtype=np.float64)
    counts = np.asarray(token_counts, dtype=np.float64)
    x = np.arange(len(shares))
    equal = 1.0 / len(shares)
    token_share = counts / counts.sum() if counts.sum() > 0 else np.zeros_like(counts)
    top = max(1.3 * max(shares.max(), token_share.max(), equal), 0.05)
    ax.bar(x, shares, color="#4a7fb5", width=0.6)
    ax.axhline(equal, color="#d95f02", ls="--", lw=1.5)
    ax.hlines(token_share, x - 0.32, x + 0.32, color="black", lw=2.5)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlim(-0.6, len(shares) + 0.1)
    ax.set_ylim(-0.12 * top, top)
    ax.set_axis_off()
    for i, n in enumerate(counts):
        ax.text(i, -0.02 * top, f"n={int(n)}", ha="center", va="top", fontsize=8)
    ax.text(len(shares) - 0.35, equal, f"1/{len(shares)}", color="#d95f02", fontsize=8, va="bottom")
    ax.text(
        -0.55,
        0.98 * top,
        "- - every sample equal (1/B)\n\u2014 every token equal (n_b/N)",
        fontsize=8,
        va="top",
    )
    ax.set_title("each sample's share of the loss", fontsize=10)


def weights_figure(
    mask: torch.Tensor,
    reductions: Sequence[str],
    *,
    sample_ids: torch.Tensor | None = None,
    dpi: int = 80,
) -> Figure:
    """One ``W`` heatmap per reduction, side by side on one colour scale, plus each row's share.

    ``mask: [B, T]``; ``sample_ids: [B, T]`` for packed rows. Titles carry each sample's total weight.
    """
    from ..reductions import sample_weights, weights  # plots import the math, never the reverse

    mats = [weights(mask, name, sample_ids=sample_ids) for name in reductions]
    vmax = max(float(m.max()) for m in mats)
    pad = _padding(mask, sample_ids)
    rows, cols = mask.shape
    fig = Figure(
        figsize=(1.0 + len(mats) * min(1.2 + 0.3 * cols, 6.0), 1.6 + 0.4 * rows),
        dpi=dpi,
        layout="constrained",
    )
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    for ax, name, w in zip(axes, reductions, mats, strict=True):
        shares = sample_weights(mask, name, sample_ids=sample_ids)
        title = f"{name}\nsample shares " + ", ".join(f"{float(s):.2f}" for s in shares)
        im = draw_weights(ax, w, pad, title=title, vmax=vmax, annotate=mask.numel() <= 60)
    fig.colorbar(im, ax=list(axes), label="W[b, t]", fraction=0.04, pad=0.02)
    fig.legend(
        handles=[Patch(color=PAD_COLOR, label="padding (no sample)")],
        loc="outside lower center",
        fontsize=8,
        frameon=False,
    )
    return fig


def reduction_figure(
    w: torch.Tensor,
    pad: np.ndarray,
    shares: Sequence[float],
    token_counts: Sequence[float],
    reduction: str,
    *,
    dpi: int = 80,
) -> Figure:
    """The explorer's picture: ``W`` heatmap (grey padding) beside each sample's share of the loss."""
    fig = Figure(figsize=(9.0, 2.9), dpi=dpi)
    ax_w, ax_s = fig.subplots(1, 2, width_ratios=[1.7, 1.0])
    top = float(_numpy(w).max()) if w.numel() else 0.0
    draw_weights(ax_w, w, pad, title=f"W[b, t] under {reduction}: white 0 \u2192 dark {top:.3g}")
    draw_sample_shares(ax_s, shares, token_counts)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.17, top=0.88, wspace=0.25)
    return fig
