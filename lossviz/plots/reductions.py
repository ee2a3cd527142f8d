"""Pictures of a reduction: the weight matrix ``W[b, t]``, each sample's share, the loss it gives.

Pure functions: tensors or numbers in, a ``matplotlib.figure.Figure`` out (no pyplot state). Padding
(``sample_ids == -1``, or ``mask == 0`` when no ids are given) is drawn grey, so it never looks like a
token with weight 0 (white): a position a sample owns but does not train, such as the first token of a
packed piece, stays white.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.image import BboxImage
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D, Bbox, BboxTransform, TransformedBbox

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


@functools.lru_cache(maxsize=512)
def _glyphs(text: str, size: float) -> tuple[Path, Bbox]:
    """Outline of ``text`` in points (baseline at y = 0) and its extent; cached, labels repeat."""
    path = TextPath((0.0, 0.0), text, prop=FontProperties(size=size))
    return path, path.get_extents()


def _label(
    fig: Figure,
    x: float,
    y: float,
    text: str,
    *,
    size: float = 8,
    color: str = "black",
    ha: str = "left",
    va: str = "baseline",
) -> float:
    """Draw ``text`` at figure fraction ``(x, y)`` as a filled path; returns its right end (fraction).

    A path is drawn ~10x faster than a Text (no glyph rasterising on every redraw) and looks the same.
    """
    path, ext = _glyphs(text, size)
    dx = {"left": -ext.x0, "center": -0.5 * (ext.x0 + ext.x1), "right": -ext.x1}[ha]
    dy = {"baseline": 0.0, "top": -ext.y1, "center": -0.5 * (ext.y0 + ext.y1), "bottom": -ext.y0}[
        va
    ]
    width_in, height_in = fig.get_size_inches()
    at = Affine2D().translate(dx, dy).scale(1 / 72).translate(x * width_in, y * height_in)
    patch = PathPatch(
        path, transform=at + fig.dpi_scale_trans, facecolor=color, edgecolor="none", label=text
    )
    fig.add_artist(patch)
    return x + (dx + ext.x1) / 72 / width_in


def _panel(data: tuple[float, float, float, float], rect: tuple[float, ...]) -> BboxTransform:
    """Transform from data ``(x0, y0, x1, y1)`` to the figure-fraction ``rect`` (no Axes needed)."""
    x0, y0, x1, y1 = rect
    return BboxTransform(Bbox([data[:2], data[2:]]), Bbox([[x0, y0], [x1, y1]]))


def reduction_figure(
    w: torch.Tensor,
    pad: np.ndarray,
    shares: Sequence[float],
    token_counts: Sequence[float],
    reduction: str,
    *,
    dpi: int = 80,
) -> Figure:
    """The explorer's picture: ``W`` heatmap (grey padding) beside each sample's share of the loss.

    ``w, pad: [B, T]``; ``shares, token_counts: [S]``. No Axes and no Text: an Axes with its ticks
    costs more than the whole picture and every Text is rasterised glyph by glyph on each redraw,
    while the explorer redraws on every slider step. So the heatmap is one image, the shares panel
    a few collections placed on the figure, and the labels cached glyph outlines. The shares panel
    shows what :func:`draw_sample_shares` shows: bars, dashed ``1/S``, black ``n_b / N`` ticks.
    """
    values = _numpy(w)
    rows, cols = values.shape
    top_w = float(values.max()) if values.size else 0.0
    fig = Figure(figsize=(9.0, 2.9), dpi=dpi)
    # heatmap: one image in a fixed rectangle (row 0 on top), on the same colours as draw_weights
    heat = (0.06, 0.17, 0.6, 0.84)
    image = BboxImage(
        TransformedBbox(Bbox([heat[:2], heat[2:]]), fig.transFigure),
        cmap=_CMAP,
        interpolation="nearest",
    )
    image.set_data(np.ma.masked_array(values, mask=pad))
    image.set_clim(0.0, top_w or 1.0)
    fig.add_artist(image)
    end = _label(fig, heat[0], 0.89, f"W[b, t] under {reduction}: white 0 \u2192 dark ", size=10)
    _label(fig, end + 0.004, 0.89, f"{top_w:.3g}", size=10)  # outlines drop the trailing space
    _label(fig, heat[0], 0.12, "position t = 0", va="top")
    _label(fig, heat[2], 0.12, f"t = {cols - 1}", va="top", ha="right")
    mid = heat[0] + 0.5 * (heat[2] - heat[0])
    _label(fig, mid, 0.12, "grey: padding (no sample)", va="top", ha="center", color="#707070")
    _label(fig, 0.055, heat[3], "row 0", va="top", ha="right")
    if rows > 1:
        _label(fig, 0.055, heat[1], f"row {rows - 1}", va="bottom", ha="right")

    # shares: bars, the "every sample equal" line and the "every token equal" ticks
    shares_np = np.asarray(shares, dtype=np.float64)
    counts = np.asarray(token_counts, dtype=np.float64)
    n = len(shares_np)
    x = np.arange(n, dtype=np.float64)
    equal = 1.0 / n
    token_share = counts / counts.sum() if counts.sum() > 0 else np.zeros_like(counts)
    top = max(1.3 * max(shares_np.max(), token_share.max(), equal), 0.05)
    to_frac = _panel((-0.6, -0.12 * top, n + 0.1, top), (0.66, 0.05, 0.99, 0.86))
    to_fig = to_frac + fig.transFigure
    bars = [
        [(xi - 0.3, 0.0), (xi + 0.3, 0.0), (xi + 0.3, h), (xi - 0.3, h)]
        for xi, h in zip(x, shares_np, strict=True)
    ]
    ticks = [[(xi - 0.32, s), (xi + 0.32, s)] for xi, s in zip(x, token_share, strict=True)]
    ends = [(-0.6, n + 0.1)]
    artists = [
        PolyCollection(bars, facecolors="#4a7fb5", edgecolors="none", transform=to_fig),
        LineCollection(
            [[(a, equal), (b, equal)] for a, b in ends],
            colors="#d95f02",
            linestyles="--",
            linewidths=1.5,
            transform=to_fig,
        ),
        LineCollection(ticks, colors="black", linewidths=2.5, transform=to_fig),
        LineCollection(
            [[(a, 0.0), (b, 0.0)] for a, b in ends],
            colors="black",
            linewidths=0.8,
            transform=to_fig,
        ),
    ]
    for artist in artists:
        fig.add_artist(artist)
    for i, c in enumerate(counts):
        _label(fig, *to_frac.transform((i, -0.02 * top)), f"n={int(c)}", ha="center", va="top")
    x_eq, y_eq = to_frac.transform((n - 0.35, equal))
    _label(fig, x_eq, y_eq + 0.015, f"1/{n}", color="#d95f02", va="bottom")
    left, high = to_frac.transform((-0.55, 0.98 * top))
    _label(fig, left, high, "- - every sample equal (1/B)", va="top")
    _label(fig, left, high - 0.06, "\u2014 every token equal (n_b/N)", va="top")
    _label(fig, 0.66, 0.89, "each sample's share of the loss", size=10)
    return fig
