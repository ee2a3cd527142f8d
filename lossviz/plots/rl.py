"""RL aggregation plots: the gradient weight of one token of each response (data in, Figure out)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.transforms import Affine2D

__all__ = ["bar_colors", "gradient_weights_figure"]

_NEGATIVE, _POSITIVE, _ZERO = "tab:green", "tab:red", "0.6"
# the bars' rectangle in figure fractions: room on the left for the scale, below for the names
_LEFT, _RIGHT, _BOTTOM, _TOP = 0.13, 0.98, 0.16, 0.84


def bar_colors(per_token: Sequence[float]) -> list[str]:
    """Green where gradient descent raises the response's log-probs (< 0), red where it lowers them."""
    return [_NEGATIVE if v < 0 else _POSITIVE if v > 0 else _ZERO for v in per_token]


def _value_range(per_token: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)`` of the value axis: always spans 0; a symmetric unit range when every bar is 0."""
    lo, hi = (
        min(0.0, float(per_token.min(initial=0.0))),
        max(0.0, float(per_token.max(initial=0.0))),
    )
    return (-1.0, 1.0) if hi == lo else (lo, hi)


def gradient_weights_figure(
    lengths: Sequence[int],
    per_token: Sequence[float] | np.ndarray,
    *,
    title: str = "",
) -> Figure:
    """Bars over responses: ``-A_b * W[b, t]``, the gradient weight of one token of response b.

    In every RL mode W is constant within a response, so one bar per response says it all. Negative
    (green): gradient descent raises that response's log-probs; positive (red): lowers them.
    No Axes (ticks and spines cost most of a small figure's drawing time): the bars are one
    ``PolyCollection`` in value units (x = response index, y = value, so a bar's height is its
    value), placed on the figure by one transform; a few texts give the scale and the names.
    ``lengths``: ``[B]`` tokens per response; ``per_token``: ``[B]`` values.
    """
    values = np.asarray(per_token, dtype=np.float64)
    n = len(values)
    lo, hi = _value_range(values)
    fig = Figure(figsize=(6.4, 2.4))
    to_fig = (
        Affine2D()
        .translate(0.5, -lo)
        .scale((_RIGHT - _LEFT) / max(n, 1), (_TOP - _BOTTOM) / (hi - lo))
        .translate(_LEFT, _BOTTOM)
    )
    transform = to_fig + fig.transFigure
    x = np.arange(n, dtype=np.float64)
    bars = [
        [(xi - 0.4, 0.0), (xi + 0.4, 0.0), (xi + 0.4, v), (xi - 0.4, v)]
        for xi, v in zip(x, values, strict=True)
    ]
    bars_layer = PolyCollection(bars, facecolors=bar_colors(values), edgecolors="none", gid="bars")
    # the zero line, so a response with weight 0 still shows where its bar would be
    zero = [[(-0.5, 0.0), (n - 0.5, 0.0)]]
    zero_layer = PolyCollection(zero, closed=False, facecolors="none", edgecolors="0.3", lw=0.6)
    for layer in (bars_layer, zero_layer):
        layer.set_transform(transform)
        fig.add_artist(layer)
    # the scale: the values at the top and bottom of the range (none when every bar is 0), and 0
    for v in sorted({lo, 0.0, hi}) if values.any() else [0.0]:
        y = to_fig.transform((0.0, v))[1]
        fig.text(
            _LEFT - 0.01, y, "0" if v == 0 else f"{v:+.2g}", ha="right", va="center", fontsize=7
        )
    # names under the bars: "#b n=N" while they fit, "#b" beyond 8 responses
    for b, (xi, length) in enumerate(zip(x, lengths, strict=True)):
        name = f"#{b} n={length}" if n <= 8 else f"#{b}"
        fig.text(to_fig.transform((xi, lo))[0], 0.03, name, ha="center", va="bottom", fontsize=7)
    # short: every glyph costs drawing time; the colours are explained in the text under the picture
    heading = "dL/d logp of one token"
    fig.text(
        0.5, 0.97, f"{title}: {heading}" if title else heading, ha="center", va="top", fontsize=8
    )
    return fig
