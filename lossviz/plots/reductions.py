"""Pictures of a reduction: the weight matrix ``W[b, t]``, each sample's share, the loss it gives.

Pure functions: numbers in (lists, numpy arrays, anything ``np.asarray`` reads), a
``matplotlib.figure.Figure`` out (no pyplot state). ``W`` and the shares come computed (``lv.weights``,
``lv.sample_weights``): a picture never computes them. Padding (a ``pad`` cell, where no sample sits)
is drawn grey, so it never looks like a token with weight 0 (white): a position a sample owns but
does not train, such as the first token of a packed piece, stays white.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .moves import FixedScaleBar, axis_layers, set_clim, set_extent, set_xlim, set_ylim

__all__ = [
    "PAD_COLOR",
    "draw_weights",
    "draw_sample_shares",
    "weights_figure",
    "ReductionPicture",
    "reduction_figure",
    "nice_ceiling",
]

PAD_COLOR = "#b8b8b8"
WEIGHT_CMAP = ListedColormap(
    matplotlib.colormaps["Blues"](np.linspace(0.0, 0.95, 256))
).with_extremes(bad=PAD_COLOR)
_BAR, _EQUAL = "#4a7fb5", "#d95f02"


def nice_ceiling(x: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``x`` (> 0): a stable scale top.

    A colour bar or axis whose top is rounded up this way keeps its ticks while the data moves a
    little, so an explorer redraws only the data.
    """
    if not x > 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= x * (1 - 1e-9))


def _numpy(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def draw_weights(
    ax,
    w: np.ndarray,
    pad: np.ndarray,
    *,
    title: str = "",
    vmax: float | None = None,
    annotate: bool = False,
):
    """Heatmap of ``W: [B, T]`` on ``ax``; ``pad: [B, T]`` bool cells are grey. Returns the image."""
    values = _numpy(w)
    pad = np.asarray(pad, dtype=bool)
    shown = np.ma.masked_array(values, mask=pad)
    top = float(vmax if vmax is not None else (values.max() if values.size else 1.0)) or 1.0
    im = ax.imshow(
        shown, cmap=WEIGHT_CMAP, vmin=0.0, vmax=top, aspect="auto", interpolation="nearest"
    )
    rows, cols = values.shape
    if annotate:
        for (b, t), v in np.ndenumerate(values):
            if not pad[b, t]:
                color = "white" if v > 0.6 * top else "black"
                ax.text(t, b, f"{v:.2g}", ha="center", va="center", fontsize=7, color=color)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.set_xlabel("position t")
    ax.set_ylabel("row b")
    if title:
        ax.set_title(title, fontsize=10)
    return im


def draw_sample_shares(ax, shares: Sequence[float], token_counts: Sequence[float]) -> dict:
    """Bars of each sample's share of the loss, with the two reference levels; returns the artists.

    "every sample equal" is the dashed line ``1/B``; "every token equal" is the black tick
    ``n_b / N`` on each bar (token mean's share). Sample ``b`` is labelled with its ``n_b`` tokens.
    The artists (``bars``, ``equal``, ``token_ticks``, ``zero``) can be moved by :func:`_move_shares`.
    """
    n = len(shares)
    x = np.arange(n)
    artists = {
        "bars": ax.bar(x, np.zeros(n), color=_BAR, width=0.6, label="share of the loss"),
        "equal": ax.axhline(0.0, color=_EQUAL, ls="--", lw=1.5, label="every sample equal (1/B)"),
        "token_ticks": ax.hlines(
            np.zeros(n),
            x - 0.32,
            x + 0.32,
            color="black",
            lw=2.5,
            label="every token equal (n_b/N)",
        ),
    }
    artists["zero"] = ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("sample (its trained tokens n_b)")
    ax.set_ylabel("share of the loss")
    ax.set_title("each sample's share of the loss", fontsize=11)
    _move_shares(ax, artists, shares, token_counts)
    return artists


def _move_shares(ax, artists: dict, shares: Sequence[float], token_counts: Sequence[float]) -> None:
    """Set the bars, the ``1/B`` line, the ``n_b/N`` ticks, tick labels and y range to new values."""
    shares = np.asarray(shares, dtype=np.float64)
    counts = np.asarray(token_counts, dtype=np.float64)
    n = len(shares)
    x = np.arange(n)
    equal = 1.0 / n
    token_share = counts / counts.sum() if counts.sum() > 0 else np.zeros_like(counts)
    bars = artists["bars"]
    if n > len(bars):
        raise ValueError(f"{n} shares for {len(bars)} bars: build the picture for {n} samples")
    for i, bar in enumerate(bars):  # bars past the n samples are hidden, not removed
        bar.set_height(shares[i] if i < n else 0.0)
        bar.set_visible(i < n)
    artists["equal"].set_ydata([equal, equal])
    artists["token_ticks"].set_segments(
        [[(xi - 0.32, s), (xi + 0.32, s)] for xi, s in zip(x, token_share, strict=True)]
    )
    set_xlim(ax, -0.6, n - 0.4)
    artists["names"] = names = tuple(f"{i}\n(n={int(c)})" for i, c in enumerate(counts))
    ax.set_xticks(x, names)
    set_ylim(ax, 0.0, nice_ceiling(1.1 * max(shares.max(), token_share.max(), equal)))


def weights_figure(
    weights: Mapping[str, np.ndarray],
    pad: np.ndarray,
    *,
    shares: Mapping[str, Sequence[float]] | None = None,
    dpi: int = 80,
) -> Figure:
    """One ``W`` heatmap per reduction, side by side on one colour scale.

    ``weights``: reduction name -> ``W: [B, T]`` (from ``lv.weights``); ``pad: [B, T]`` True where
    no sample sits (``mask == 0``, or ``sample_ids < 0`` for packed rows). ``shares`` (optional):
    name -> each sample's share ``[S]`` (from ``lv.sample_weights``), written under its title.
    """
    if not weights:
        raise ValueError("weights is empty: pass {reduction name: W [B, T]} for at least one")
    names = list(weights)
    mats = [_numpy(weights[name]) for name in names]
    pad = np.asarray(pad, dtype=bool)
    if any(m.shape != pad.shape for m in mats):
        shapes = ", ".join(f"{n} {m.shape}" for n, m in zip(names, mats, strict=True))
        raise ValueError(f"every W must have pad's shape {pad.shape}; got {shapes}")
    vmax = max(float(m.max()) for m in mats)
    rows, cols = pad.shape
    fig = Figure(
        figsize=(1.0 + len(mats) * min(1.2 + 0.3 * cols, 6.0), 1.6 + 0.4 * rows),
        dpi=dpi,
        layout="constrained",
    )
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    for ax, name, w in zip(axes, names, mats, strict=True):
        title = name
        if shares is not None:
            title += "\nsample shares " + ", ".join(f"{float(s):.2f}" for s in shares[name])
        im = draw_weights(ax, w, pad, title=title, vmax=vmax, annotate=pad.size <= 60)
    fig.colorbar(im, ax=list(axes), label="W[b, t]", fraction=0.04, pad=0.02)
    fig.legend(
        handles=[Patch(color=PAD_COLOR, label="padding (no sample)")],
        loc="outside lower center",
        fontsize=8,
        frameon=False,
    )
    return fig


class ReductionPicture:
    """The reduction explorer's picture for up to ``S`` samples: ``W`` heatmap with its colour bar
    beside each sample's share of the loss; :meth:`update` moves it to new numbers, returns the Figure.

    Built once; what changes with the numbers (the heatmap and its axes, the colour bar, the bars
    and their names) is listed in ``dynamic``, and ``static_key()`` names the rest (the reduction
    in the title, the shares' scale), so an explorer's :class:`~lossviz.widgets.Canvas` redraws
    only those.
    """

    def __init__(self, num_samples: int, *, dpi: int = 80) -> None:
        self.fig = fig = Figure(figsize=(10.0, 3.6), dpi=dpi)
        self.heat = fig.add_axes((0.065, 0.2, 0.42, 0.64))
        cax = fig.add_axes((0.5, 0.2, 0.012, 0.64))
        self.shares = fig.add_axes((0.655, 0.2, 0.33, 0.64))
        self.image = draw_weights(self.heat, np.zeros((1, 1)), np.zeros((1, 1), bool), vmax=1.0)
        self.heat.xaxis.set_label_coords(0.5, -0.085 / 0.64)  # fixed: under two-digit labels
        self.heat.yaxis.set_label_coords(-0.035 / 0.42, 0.5)
        self.scale = FixedScaleBar(fig, cax, WEIGHT_CMAP, "weight W[b, t]")
        self.scale.show(1.0)
        cax.yaxis.set_label_coords(1 + 0.05 / 0.012, 0.5)  # right of labels such as 0.025
        self.title = self.heat.set_title("", fontsize=11, y=1.0)
        self.bars = draw_sample_shares(self.shares, np.zeros(num_samples), np.ones(num_samples))
        self.shares.xaxis.set_label_coords(0.5, -0.13 / 0.64)  # under two-line labels
        self.shares.yaxis.set_label_coords(-0.05 / 0.33, 0.5)
        handles = [
            Patch(color=PAD_COLOR, label="padding (no sample)"),
            Patch(color=_BAR, label="share of the loss"),
            Line2D([], [], color=_EQUAL, ls="--", lw=1.5, label="every sample equal (1/B)"),
            Line2D([], [], color="black", lw=2.5, label="every token equal (n_b/N)"),
        ]
        fig.legend(handles=handles, loc="upper center", ncol=4, frameon=False, fontsize=9)
        # drawn on every update: the cells, the bars and lines, the frames over them; the axes,
        # the colour bar's ticks and the title are layers (see layers())
        self.dynamic = [
            self.image,
            *self.heat.spines.values(),
            *self.bars["bars"],
            self.bars["equal"],
            self.bars["token_ticks"],
            self.bars["zero"],
        ]

    def static_key(self) -> tuple:
        """Nothing outside ``dynamic`` and the layers moves: one background per picture."""
        return ()

    def layers(self) -> list[tuple[str, object, list]]:
        """Each axis's ticks (once per range or labels), its label, the colour bar, the title."""
        heat, shares = self.heat, self.shares
        return [
            *axis_layers("heat.x", heat.xaxis, heat.get_xlim()),
            *axis_layers("heat.y", heat.yaxis, heat.get_ylim()),
            *axis_layers("scale", self.scale.ax.yaxis, self.scale.top),
            *axis_layers("shares.x", shares.xaxis, (shares.get_xlim(), self.bars["names"])),
            *axis_layers("shares.y", shares.yaxis, shares.get_ylim()),
            ("title", self.title.get_text(), [self.title]),
        ]

    def update(
        self,
        w: np.ndarray,
        pad: np.ndarray,
        shares: Sequence[float],
        token_counts: Sequence[float],
        reduction: str,
    ) -> Figure:
        """``w, pad: [B, T]`` (weights, padding cells); ``shares, token_counts: [S]``."""
        values = _numpy(w)
        rows, cols = values.shape
        self.image.set_data(np.ma.masked_array(values, mask=np.asarray(pad, dtype=bool)))
        set_extent(self.image, (-0.5, cols - 0.5, rows - 0.5, -0.5))
        set_xlim(self.heat, -0.5, cols - 0.5)
        set_ylim(self.heat, rows - 0.5, -0.5)
        top = nice_ceiling(float(values.max()) if values.size else 0.0)
        set_clim(self.image, 0.0, top)  # the colour bar is not tied to it: only its labels move
        self.scale.show(top)
        self.title.set_text(f"weight W[b, t] of each token under {reduction}")
        _move_shares(self.shares, self.bars, shares, token_counts)
        return self.fig


def reduction_figure(
    w: np.ndarray,
    pad: np.ndarray,
    shares: Sequence[float],
    token_counts: Sequence[float],
    reduction: str,
    *,
    dpi: int = 80,
) -> Figure:
    """The explorer's picture: ``W`` heatmap (grey padding) beside each sample's share of the loss.

    ``w, pad: [B, T]``; ``shares, token_counts: [S]``. The same picture as
    :class:`ReductionPicture` (which the explorer keeps and moves instead of building a new one).
    """
    return ReductionPicture(len(shares), dpi=dpi).update(w, pad, shares, token_counts, reduction)
