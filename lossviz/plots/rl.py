"""RL aggregation plots: the gradient weight of one token of each response (data in, Figure out)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.transforms import Affine2D

__all__ = ["GradientWeightsPicture", "bar_colors", "gradient_weights_figure", "token_push_figure"]

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


class GradientWeightsPicture:
    """The bars of :func:`gradient_weights_figure` for ``n`` responses, redrawn in place.

    Built once per number of responses; :meth:`update` moves the bars, scale and names, so an
    explorer skips building a Figure, its collections and texts on every change (and the Agg
    canvas keeps its text-size cache). The pure function draws through the same code.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.figure = fig = Figure(figsize=(6.4, 2.4))
        self._to_fig = Affine2D()
        transform = self._to_fig + fig.transFigure
        self._bars = PolyCollection([], edgecolors="none", gid="bars")
        # the zero line, so a response with weight 0 still shows where its bar would be
        zero = PolyCollection(
            [[(-0.5, 0.0), (n - 0.5, 0.0)]], closed=False, facecolors="none", edgecolors="0.3"
        )
        zero.set_linewidth(0.6)
        for layer in (self._bars, zero):
            layer.set_transform(transform)
            fig.add_artist(layer)
        # the scale: the values at the bottom and top of the range (none when every bar is 0), and 0
        self._scale = [
            fig.text(_LEFT - 0.01, 0.0, "", ha="right", va="center", fontsize=7) for _ in range(3)
        ]
        self._names = [
            fig.text(_LEFT + (b + 0.5) * (_RIGHT - _LEFT) / max(n, 1), 0.03, "", ha="center")
            for b in range(n)
        ]
        for name in self._names:
            name.set_fontsize(7)
            name.set_verticalalignment("bottom")
        self._heading = fig.text(0.5, 0.97, "", ha="center", va="top", fontsize=8)

    def update(
        self, lengths: Sequence[int], per_token: Sequence[float] | np.ndarray, title: str = ""
    ) -> Figure:
        """Redraw for ``lengths`` ``[n]`` and ``per_token`` ``[n]``; returns the same Figure."""
        values = np.asarray(per_token, dtype=np.float64)
        n = self.n
        if len(values) != n or len(lengths) != n:
            raise ValueError(f"this picture has {n} responses; got {len(lengths)}, {len(values)}")
        # bars are drawn in value units, unless the range is so small or large (1e-320, 1e300)
        # that the transform's matrix would overflow: then in units of the largest |value|
        top = float(np.max(np.abs(values), initial=0.0)) if np.isfinite(values).all() else 0.0
        scale = top if top > 0 and not 1e-100 < top < 1e100 else 1.0
        values = values / scale
        lo, hi = _value_range(values)
        # value units -> figure fraction: x = response index, y = value / scale
        self._to_fig.clear().translate(0.5, -lo).scale(
            (_RIGHT - _LEFT) / max(n, 1), (_TOP - _BOTTOM) / (hi - lo)
        ).translate(_LEFT, _BOTTOM)
        self._bars.set_verts(
            [
                [(b - 0.4, 0.0), (b + 0.4, 0.0), (b + 0.4, v), (b - 0.4, v)]
                for b, v in enumerate(values)
            ]
        )
        self._bars.set_facecolor(bar_colors(values))
        ticks = sorted({lo, 0.0, hi}) if values.any() else [0.0]
        for k, text in enumerate(self._scale):
            v = ticks[k] if k < len(ticks) else None
            text.set_visible(v is not None)
            text.set_text("" if v is None else "0" if v == 0 else f"{v * scale:+.2g}")
            text.set_y(self._to_fig.transform((0.0, v or 0.0))[1])
        # names under the bars: "#b n=N" while they fit, "#b" beyond 8 responses
        for b, (name, length) in enumerate(zip(self._names, lengths, strict=True)):
            name.set_text(f"#{b} n={length}" if n <= 8 else f"#{b}")
        # short: every glyph costs drawing time; the colours are explained in the text output
        heading = "dL/d logp of one token"
        self._heading.set_text(f"{title}: {heading}" if title else heading)
        return self.figure


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
    return GradientWeightsPicture(len(lengths)).update(lengths, per_token, title)


def token_push_figure(
    per_token: Sequence[Sequence[float]] | np.ndarray,
    lengths: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """One bar per token position, grouped by response: ``dL/d logp[b, t]`` for ``t < n_b``.

    ``per_token: [B, T]`` (padding ignored), ``lengths: [B]``; ``labels: [B]`` names each group
    (default ``"#b A=..."`` is the caller's to give). Green (< 0): descent raises that token's
    log-prob; red (> 0): lowers it. Groups are separated by one empty slot.
    """
    values = np.asarray(per_token, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(lengths):
        raise ValueError(f"per_token must be [B, T] with B = {len(lengths)}, got {values.shape}")
    if any(n < 0 or n > values.shape[1] for n in lengths):
        raise ValueError(f"lengths must lie in [0, {values.shape[1]}], got {list(lengths)}")
    fig = Figure(figsize=(7.2, 2.6))
    ax = fig.add_subplot()
    x, heights, centers, start = [], [], [], 0
    for b, n in enumerate(lengths):
        x.extend(range(start, start + n))
        heights.extend(values[b, :n].tolist())
        centers.append(start + (n - 1) / 2 if n else start)
        start += n + 1
    ax.bar(x, heights, width=0.8, color=bar_colors(heights))
    ax.axhline(0.0, color="0.3", linewidth=0.6)
    names = labels if labels is not None else [f"#{b} n={n}" for b, n in enumerate(lengths)]
    ax.set_xticks(centers, list(names), fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("dL/d logp", fontsize=8)
    ax.set_xlim(-1, max(start - 1, 1))
    ax.set_title(title or "each token's push (one bar per token, grouped by response)", fontsize=8)
    fig.tight_layout()
    return fig
