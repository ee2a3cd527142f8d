"""RL aggregation plots: each response's per-token gradient weight and total push (data in, Figure out)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["gradient_weights_figure"]


def gradient_weights_figure(
    lengths: list[int],
    per_token: np.ndarray,
    total: np.ndarray,
    *,
    title: str = "",
) -> Figure:
    """Two bar charts over responses: signed weight of one token, and its sum over the response.

    ``per_token[b] = -A_b * W[b, t]`` (the same for every token of b in these modes), ``total[b]`` its
    sum over the n_b tokens. Negative = gradient descent raises the response's log-probs.
    """
    per_token = np.asarray(per_token, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    fig = Figure(figsize=(6.4, 2.6))
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.2, top=0.84, wspace=0.3)
    axes = fig.subplots(1, 2)
    x = np.arange(len(lengths))
    labels = [f"#{b}\nn={n}" for b, n in enumerate(lengths)]
    for ax, vals, name in (
        (axes[0], per_token, "weight of one token  -A·W"),
        (axes[1], total, "whole response  Σ_t -A·W"),
    ):
        colors = ["tab:green" if v < 0 else "tab:red" if v > 0 else "0.6" for v in vals]
        ax.bar(x, vals, color=colors)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
