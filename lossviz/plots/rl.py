"""RL aggregation plots: the push on each token of a group of responses (data in, Figure out).

One sign convention everywhere: the per-token push ``A·W·g(r) = -dL/dlog π`` is drawn as it is,
so "pushed up" (gradient descent raises the token's log-prob) points up and is green, "pushed down"
points down and is red.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .moves import axis_layers, set_xlim, set_ylim
from .reductions import nice_ceiling

__all__ = ["GradientWeightsPicture", "bar_colors", "gradient_weights_figure", "token_push_figure"]

UP, DOWN, _ZERO = "tab:green", "tab:red", "0.6"  # pushed up, pushed down, not pushed


def bar_colors(push: Sequence[float]) -> list[str]:
    """Green for a push > 0 (descent raises the log-prob), red for < 0 (lowers it), grey for 0."""
    return [UP if v > 0 else DOWN if v < 0 else _ZERO for v in push]


def _value_range(per_token: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)`` of the value axis: spans 0, rounded out to a stable scale; (-1, 1) when all 0."""
    lo = min(0.0, float(per_token.min(initial=0.0)))
    hi = max(0.0, float(per_token.max(initial=0.0)))
    if hi == lo:
        return (-1.0, 1.0)
    return (-nice_ceiling(-lo) if lo < 0 else 0.0, nice_ceiling(hi) if hi > 0 else 0.0)


class GradientWeightsPicture:
    """The bars of :func:`gradient_weights_figure` for any number of responses, moved in place.

    :meth:`update` takes ``dL/dlog π`` of one token per response (what :func:`lossviz.rl.gradient_weights`
    gives) and draws its negative, the push: up and green = pushed up, down and red = pushed down.
    Labelled axes (value, responses with their lengths), a legend for the two colours and a title.
    :meth:`update` moves the bars and the response names (``dynamic``); ``static_key()`` names the
    rest (value range, title), so an explorer's :class:`~lossviz.widgets.Canvas` redraws the bars.
    """

    def __init__(self, *, dpi: int = 80) -> None:
        self.figure = self.fig = fig = Figure(figsize=(8.0, 3.2), dpi=dpi)
        self.ax = ax = fig.add_axes((0.11, 0.2, 0.56, 0.66))
        self._bars = PolyCollection([], edgecolors="none", gid="bars")
        ax.add_collection(self._bars)
        # a response with weight 0 still shows its place
        self._zero = ax.axhline(0.0, color="0.3", lw=0.6)
        ax.set_xlabel("response (its tokens n)")
        ax.xaxis.set_label_coords(0.5, -0.14 / 0.66)  # fixed, under two-line names
        ax.yaxis.set_label_coords(-0.075 / 0.56, 0.5)  # left of labels such as -0.25
        # short labels (-2, -1, 0 with "1e-4" above the axis), whatever the scale
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax.grid(axis="y", color="#dddddd", lw=0.6)
        ax.set_axisbelow(True)
        self._title = ax.set_title("", fontsize=11, y=1.0, pad=14)  # above "1e-4"
        handles = [
            Patch(color=UP, label="> 0, up: descent raises\nthe response's log-probs"),
            Patch(color=DOWN, label="< 0, down: descent\nlowers them"),
        ]
        fig.legend(
            handles=handles,
            loc="center left",
            bbox_to_anchor=(0.68, 0.55),
            frameon=False,
            fontsize=9,
        )
        self._names: tuple[str, ...] = ()
        # drawn on every update: the bars, the zero line and the frame over them
        self.dynamic = [self._bars, self._zero, *ax.spines.values()]

    def static_key(self) -> tuple:
        """Nothing outside ``dynamic`` and the layers moves: one background per picture."""
        return ()

    def layers(self) -> list[tuple[str, object, list]]:
        """The value axis with its grid, the responses' names, the labels and the title."""
        ax = self.ax
        return [
            *axis_layers("y", ax.yaxis, ax.get_ylim()),
            *axis_layers("x", ax.xaxis, (ax.get_xlim(), self._names)),
            ("title", self._title.get_text(), [self._title]),
        ]

    def update(
        self, lengths: Sequence[int], per_token: Sequence[float] | np.ndarray, title: str = ""
    ) -> Figure:
        """Redraw for ``lengths: [n]`` and ``per_token: [n]`` (``dL/dlog π``); returns the same Figure.

        The bars are the push ``-per_token``.
        """
        values = -np.asarray(per_token, dtype=np.float64) + 0.0  # the push; + 0.0: no -0.0
        n = len(values)
        if len(lengths) != n:
            raise ValueError(f"{len(lengths)} lengths but {n} values: give one value per response")
        # values far outside floats' comfortable range (1e-320, 1e300) are drawn in units of the
        # largest |value|, and the axis label says so
        top = float(np.max(np.abs(values), initial=0.0)) if np.isfinite(values).all() else 0.0
        scale = top if top > 0 and not 1e-100 < top < 1e100 else 1.0
        values = values / scale
        self._bars.set_verts(
            [
                [(b - 0.4, 0.0), (b + 0.4, 0.0), (b + 0.4, v), (b - 0.4, v)]
                for b, v in enumerate(values)
            ]
        )
        self._bars.set_facecolor(bar_colors(values))
        set_xlim(self.ax, -0.6, max(n, 2) - 0.4)
        set_ylim(self.ax, *_value_range(values))
        unit = "" if scale == 1.0 else f" (x {scale:.1e})"
        self.ax.set_ylabel("push on one token" + unit)
        step = max(1, -(-n // 16))  # at most 16 names fit under the bars
        names = [f"#{b}\nn={length}" if n <= 8 else f"#{b}" for b, length in enumerate(lengths)]
        self._names = tuple(names[::step])
        self.ax.set_xticks(range(0, n, step), self._names)
        heading = "push -dL/dlog π on one token of each response"
        self._title.set_text(f"{title}: {heading}" if title else heading)
        return self.fig


def gradient_weights_figure(
    lengths: Sequence[int],
    per_token: Sequence[float] | np.ndarray,
    *,
    title: str = "",
) -> Figure:
    """Bars over responses: the push ``A_b·W[b, t]`` on one token of response b (on policy).

    ``per_token: [B]`` is ``dL/dlog π = -A_b·W[b, t]`` (:func:`lossviz.rl.gradient_weights`); the bar
    is its negative, the push: up and green, descent raises that response's log-probs; down and red,
    it lowers them. In every RL mode W is constant within a response, so one bar per response says it
    all. ``lengths: [B]`` tokens per response.
    """
    return GradientWeightsPicture().update(lengths, per_token, title)


def token_push_figure(
    per_token: Sequence[Sequence[float]] | np.ndarray,
    lengths: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """One bar per token position, grouped by response: the push ``A·W·g(r)[b, t]`` for ``t < n_b``.

    ``per_token: [B, T]`` the push ``-dL/dlog π`` (:func:`lossviz.rl.token_push`; padding ignored),
    ``lengths: [B]``; ``labels: [B]`` names each group (default ``"#b n=..."``). Up and green: descent
    raises that token's log-prob; down and red: lowers it. Groups are separated by one empty slot.
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
    ax.set_xticks(centers, list(names), fontsize=9)
    ax.set_ylabel("push -dL/dlog π")
    handles = [Patch(color=UP, label="pushed up"), Patch(color=DOWN, label="pushed down")]
    ax.legend(handles=handles, loc="best", frameon=False, fontsize=8)
    ax.set_xlim(-1, max(start - 1, 1))
    ax.set_title(title or "each token's push (one bar per token, grouped by response)", fontsize=10)
    fig.tight_layout()
    return fig
