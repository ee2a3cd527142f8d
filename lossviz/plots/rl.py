"""RL aggregation plots: the gradient weight of one token of each response (data in, Figure out)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["gradient_weights_figure"]


def gradient_weights_figure(
    lengths: list[int],
    per_token: np.ndarray,
    *,
    title: str = "",
) -> Figure:
    """Bars over responses: ``-A_b * W[b, t]``, the gradient weight of one token of response b.

    In every RL mode W is constant within a response, so one bar per response says it all. Negative
    (green): gradient descent raises that response's log-probs; positive (red): lowers them. One axes
    only, to keep an explorer update fast.
    """
    per_token = np.asarray(per_token, dtype=np.float64)
    fig = Figure(figsize=(6.4, 2.6))
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.2, top=0.86)
    ax = fig.add_subplot()
    x = np.arange(len(lengths))
    colors = ["tab:green" if v < 0 else "tab:red" if v > 0 else "0.6" for v in per_token]
    ax.bar(x, per_token, color=colors)
    ax.axhline(0, color="0.3", lw=0.6)
    ax.set_xticks(x, [f"#{b} n={n}" for b, n in enumerate(lengths)], fontsize=7)
    ax.set_ylabel("dL/d logp of one token", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
