"""Preference pairs as a heatmap of each token's push: one row per response, chosen above rejected.

Pure: numbers in, a ``matplotlib.figure.Figure`` out. The push is ``-dL/dlog π`` of each token (signed;
the non-negative weight ``W`` of notebooks 01-12 is its size when a loss only ever pushes one way).
Green cells (push > 0): gradient descent raises that token's log-prob; red (push < 0): it lowers it;
grey: padding. Each row is labelled with its length ``n`` and its total push ``Σ_t``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .moves import FixedScaleBar, axis_layers, set_clim, set_extent, set_xlim, set_ylim
from .reductions import PAD_COLOR, nice_ceiling

__all__ = ["PairWeightsPicture", "pair_weights_figure"]

# pushed down (red) through 0 (white) to pushed up (green), the colours of lossviz.plots.rl
_CMAP = LinearSegmentedColormap.from_list("push", ["tab:red", "white", "tab:green"]).with_extremes(
    bad=PAD_COLOR
)
PUSH_LABEL = "push -dL/dlog π"


class PairWeightsPicture:
    """Heatmap of the push for ``B`` pairs (rows ``chosen #0, rejected #0, chosen #1, ...``), moved in place.

    ``label`` names the colour bar (default: the push itself; a caller that rescales says how).

    Built once per number of pairs. :meth:`update` moves the cells, the row names (each row's
    length and total ``Σ W``) and the colour bar's ticks (``dynamic``); ``static_key()`` names
    the rest (width, title), so an explorer's :class:`~lossviz.widgets.Canvas` redraws only those.
    """

    def __init__(self, pairs: int, *, dpi: int = 80, label: str = PUSH_LABEL) -> None:
        self.pairs = pairs
        height = 1.6 + 0.34 * 2 * pairs
        self.fig = fig = Figure(figsize=(8.0, height), dpi=dpi)
        # fixed rectangles instead of a constrained layout: the left margin fits the row names,
        # the bottom one the axis label and the legend (both in inches, so any B fits)
        bottom, top_margin = 0.95 / height, 0.35 / height
        self.ax = ax = fig.add_axes((0.3, bottom, 0.52, 1 - bottom - top_margin))
        cax = fig.add_axes((0.84, bottom, 0.02, 1 - bottom - top_margin))
        self.image = ax.imshow(
            np.zeros((2 * pairs, 1)), cmap=_CMAP, aspect="auto", interpolation="nearest"
        )
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        ax.set_xlabel("response token t")
        ax.xaxis.set_label_coords(0.5, -0.3 / (height * (1 - bottom - top_margin)))
        separators = [ax.axhline(2 * b - 0.5, color="black", lw=1.0) for b in range(1, pairs)]
        self.scale = FixedScaleBar(fig, cax, _CMAP, label)
        self.scale.show(1.0, symmetric=True)
        cax.yaxis.set_label_coords(1 + 0.5 / 0.16, 0.5)  # right of labels such as -0.025
        handles = [
            Patch(color=_CMAP(1.0), label="push > 0: descent raises the token's log-prob"),
            Patch(color=_CMAP(0.0), label="push < 0: lowers it"),
            Patch(color=PAD_COLOR, label="padding"),
        ]
        fig.legend(
            handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9,
            bbox_to_anchor=(0.5, 0.0),
        )  # fmt: skip
        self.title = ax.set_title("", fontsize=11, y=1.0)
        # drawn on every update: the cells, and the lines between pairs and the frame over them
        # (as in a full draw); the axes, the colour bar's labels and the title are layers
        self.dynamic = [self.image, *separators, *ax.spines.values()]
        self._names: tuple[str, ...] = ()

    def static_key(self) -> tuple:
        """Nothing outside ``dynamic`` and the layers moves: one background per picture."""
        return ()

    def layers(self) -> list[tuple[str, object, list]]:
        """The row names (each row's total: new with most settings), the token axis, the colour
        bar's labels and the title, each drawn once per state."""
        ax = self.ax
        return [
            ("rows", (ax.get_ylim(), self._names), [ax.yaxis]),
            *axis_layers("x", ax.xaxis, ax.get_xlim()),
            *axis_layers("scale", self.scale.ax.yaxis, self.scale.top),
            ("title", self.title.get_text(), [self.title]),
        ]

    def update(
        self,
        w_chosen,
        w_rejected,
        chosen_lengths,
        rejected_lengths,
        title: str = "",
        *,
        limit: float | None = None,
    ) -> Figure:
        """Pushes ``w_chosen: [B, Tc]``, ``w_rejected: [B, Tr]``; lengths ``[B]``; returns the Figure.

        ``limit``: the colour scale's end (``-limit .. limit``), so several figures share one scale;
        default: the largest ``|push|``, rounded up.
        """
        wc, wr = np.asarray(w_chosen, dtype=np.float64), np.asarray(w_rejected, dtype=np.float64)
        pairs = self.pairs
        if wc.ndim != 2 or wr.ndim != 2 or wc.shape[0] != pairs or wr.shape[0] != pairs:
            raise ValueError(
                f"w_chosen {wc.shape} and w_rejected {wr.shape} must be [B, T] with B = {pairs} pairs"
            )
        if len(chosen_lengths) != pairs or len(rejected_lengths) != pairs:
            raise ValueError(
                f"{len(chosen_lengths)} chosen lengths but {len(rejected_lengths)} rejected lengths "
                f"for {pairs} pairs: give one of each per pair"
            )
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
        top = nice_ceiling(top) if 0 < top < 1e300 else 1.0  # symmetric about 0: sign = colour
        if limit is not None:
            if not 0 < limit < float("inf"):
                raise ValueError(f"limit must be a positive finite number, got {limit!r}")
            top = float(limit)
        self.image.set_data(np.ma.masked_invalid(grid))
        set_extent(self.image, (-0.5, width - 0.5, 2 * pairs - 0.5, -0.5))
        set_clim(self.image, -top, top)  # the colour bar is not tied to it: only its labels move
        self.scale.show(top, symmetric=True)
        set_xlim(self.ax, -0.5, width - 0.5)
        set_ylim(self.ax, 2 * pairs - 0.5, -0.5)
        if tuple(names) != self._names:
            self._names = tuple(names)
            self.ax.set_yticks(range(2 * pairs), names, fontsize=9)
        self.title.set_text(title)
        return self.fig


def pair_weights_figure(
    w_chosen: np.ndarray | Sequence[Sequence[float]],
    w_rejected: np.ndarray | Sequence[Sequence[float]],
    chosen_lengths: Sequence[int],
    rejected_lengths: Sequence[int],
    *,
    title: str = "",
    dpi: int = 80,
    limit: float | None = None,
    label: str = PUSH_LABEL,
) -> Figure:
    """Heatmap of each token's push for ``B`` pairs: rows ``chosen #0, rejected #0, chosen #1, ...``.

    ``w_chosen: [B, Tc]``, ``w_rejected: [B, Tr]`` the pushes ``-dL/dlog π`` (padding anywhere past
    each row's length is drawn grey); ``chosen_lengths``, ``rejected_lengths``: ``[B]`` token counts.
    The colour scale is symmetric about 0, so the sign reads off the colour; ``limit`` fixes its end
    (one scale for several figures) and ``label`` names it. The picture is :class:`PairWeightsPicture`.
    """
    pairs = len(chosen_lengths)
    return PairWeightsPicture(pairs, dpi=dpi, label=label).update(
        w_chosen, w_rejected, chosen_lengths, rejected_lengths, title, limit=limit
    )
