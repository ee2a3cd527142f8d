"""Chat pictures: a token strip coloured by weight with each token's role, per-turn weight bars,
the completion's share of the weight against the prompt weight, and the spread of the generation ratio.

Pure functions: data in, ``matplotlib.figure.Figure`` out, no pyplot state. Each ``draw_*`` function
draws into a given ``Axes`` so a widget can combine them in one small figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = [
    "ROLE_COLORS",
    "draw_token_strip",
    "draw_turn_bars",
    "token_strip",
    "chat_weights_figure",
    "share_curves",
    "ratio_histogram",
]

ROLE_COLORS = {"system": "#9e9e9e", "user": "#f28e2b", "assistant": "#4e79a7"}
_LABEL_LIMIT = 160  # beyond this many tokens, labels would be unreadable and slow to draw


def _label(piece: str) -> str:
    return {"\n": "\u21b5", "\n\n": "\u21b5\u21b5", "<|im_start|>": "<s|", "<|im_end|>": "|e>"}.get(
        piece, piece.replace("\u2581", "\u00b7")
    )


def _box(x: float, y0: float, y1: float) -> list[tuple[float, float]]:
    return [(x, y0), (x + 0.96, y0), (x + 0.96, y1), (x, y1)]


def draw_token_strip(
    ax,
    rows: Sequence[tuple[Sequence[str], Sequence[str], Sequence[float]]],
    templates: Sequence[Sequence[bool]] | None = None,
    *,
    per_row: int = 24,
    vmax: float | None = None,
    labels: bool | None = None,
    legend: bool = True,
) -> None:
    """Tokens left to right, wrapped every ``per_row``: cell colour = weight, thin band = role.

    ``rows``: one ``(pieces, roles, weights)`` per example (each ``[T_k]``); examples stack downwards.
    ``templates`` (optional, per example): template tokens are drawn as shorter cells. Labels are
    drawn when ``labels`` is True (default: up to 160 tokens); they dominate the drawing time.
    """
    weights_all = np.concatenate([np.asarray(w, dtype=float) for _, _, w in rows])
    top = float(vmax if vmax is not None else max(weights_all.max(initial=0.0), 1e-12))
    n_tokens = sum(len(p) for p, _, _ in rows)
    show = n_tokens <= _LABEL_LIMIT if labels is None else labels
    cmap = matplotlib.colormaps["Greens"]
    cells, colors, bands, band_colors = [], [], [], []
    y = 0.0
    for k, (pieces, roles, w) in enumerate(rows):
        short = templates[k] if templates is not None else [False] * len(pieces)
        for t, (piece, role, wt) in enumerate(zip(pieces, roles, w, strict=True)):
            x, yy = t % per_row, y + (t // per_row) * 1.4
            cells.append(_box(x, yy + (0.35 if short[t] else 0.0), yy + 1.0))
            colors.append(cmap(0.1 + 0.5 * min(float(wt) / top, 1.0)) if wt > 0 else "white")
            bands.append(_box(x, yy + 1.02, yy + 1.27))
            band_colors.append(ROLE_COLORS[role])
            if show:
                ax.text(x + 0.48, yy + 0.5, _label(piece), ha="center", va="center", fontsize=6)
        y += ((len(pieces) - 1) // per_row + 1) * 1.4 + 0.6
    # one PolyCollection per layer: hundreds of Rectangle patches would each build transforms
    ax.add_collection(PolyCollection(cells, facecolors=colors, edgecolors="#cccccc", lw=0.3))
    ax.add_collection(PolyCollection(bands, facecolors=band_colors, edgecolors="none"))
    ax.set_xlim(-0.2, per_row + 0.2)
    ax.set_ylim(y, -0.2)
    ax.set_axis_off()
    if not legend:
        return
    ax.legend(
        handles=[Patch(color=c, label=r) for r, c in ROLE_COLORS.items()],
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=3,
        fontsize=7,
        frameon=False,
    )


def draw_turn_bars(
    ax, roles: Sequence[str], totals: Sequence[float], *, ylabel: str = "share of the loss"
) -> None:
    """One bar per turn (message), coloured by role, height = the turn's total weight."""
    x = np.arange(len(totals))
    ax.bar(x, totals, color=[ROLE_COLORS[r] for r in roles])
    for xi, v in zip(x, totals, strict=True):
        ax.text(xi, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [f"{k}\n{r[:4]}" for k, r in enumerate(roles)], fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.margins(y=0.2)


def token_strip(
    pieces: Sequence[str],
    roles: Sequence[str],
    weights: Sequence[float],
    templates: Sequence[bool] | None = None,
    *,
    per_row: int = 24,
    title: str = "",
) -> Figure:
    """A one-example token strip: each token coloured by its weight, its role in the band below."""
    n_lines = (len(pieces) - 1) // per_row + 1
    fig = Figure(figsize=(7.5, 0.5 + 0.32 * n_lines), layout="constrained")
    ax = fig.add_subplot()
    draw_token_strip(ax, [(pieces, roles, weights)], templates and [templates], per_row=per_row)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def chat_weights_figure(
    rows: Sequence[tuple[Sequence[str], Sequence[str], Sequence[float]]],
    templates: Sequence[Sequence[bool]],
    turn_roles: Sequence[str],
    totals: Sequence[float],
    *,
    per_row: int = 32,
    total_label: str = "share of the loss",
) -> Figure:
    """The explorer's picture in ONE axis-less axes: token strips on top, one bar per turn below.

    Axes, ticks and text are what cost time when a figure is drawn, so the bars are a collection
    with one label each and there are no ticks at all (the widget must redraw in < 100 ms).
    """
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9))
    draw_token_strip(ax, rows, templates, per_row=per_row, labels=False, legend=False)
    strip_bottom = ax.get_ylim()[0]
    top = max(max(totals), 1e-12)
    n, height = len(totals), 0.45 * max(strip_bottom, 6.0)
    width = per_row / max(n, 1)
    base = strip_bottom + 0.9 + height + 1.6
    bars, labels = [], []
    for k, (role, value) in enumerate(zip(turn_roles, totals, strict=True)):
        x0, h = k * width + 0.1 * width, height * value / top
        bars.append(
            [(x0, base), (x0 + 0.8 * width, base), (x0 + 0.8 * width, base - h), (x0, base - h)]
        )
        labels.append(
            ax.text(
                x0 + 0.4 * width,
                base + 0.2,
                f"{k} {role}\n{value:.3g}",
                fontsize=7,
                ha="center",
                va="top",
            )
        )
    colors = [ROLE_COLORS[r] for r in turn_roles]
    ax.add_collection(PolyCollection(bars, facecolors=colors, edgecolors="none"))
    ax.text(
        0, strip_bottom + 0.5, f"per turn (bar colour = role): {total_label}", fontsize=8, va="top"
    )
    ax.set_ylim(base + 1.5, -0.2)
    return fig


def share_curves(
    ratios: Mapping[str, float], prompt_weights: Sequence[float], shares: Mapping[str, Sequence]
) -> Figure:
    """Completion share ``Rg / (Rg + plw)`` against plw, one line per labelled Rg."""
    fig = Figure(figsize=(6.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for label, rg in ratios.items():
        ax.plot(prompt_weights, shares[label], label=f"{label} (Rg = {rg:.3g})")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("prompt loss weight plw")
    ax.set_ylabel("completion's share of the weight")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def ratio_histogram(ratios_by_kind: Mapping[str, Sequence[float]], means: Mapping) -> Figure:
    """Histogram of Rg on a log axis, stacked by kind, with arithmetic and geometric means marked."""
    fig = Figure(figsize=(6.0, 3.0), layout="constrained")
    ax = fig.add_subplot()
    every = np.concatenate([np.asarray(v, dtype=float) for v in ratios_by_kind.values()])
    bins = np.logspace(np.log10(every.min()) - 0.1, np.log10(every.max()) + 0.1, 25)
    ax.hist(list(ratios_by_kind.values()), bins=bins, stacked=True, label=list(ratios_by_kind))
    ax.axvline(means["arithmetic"], color="k", ls="--", label="arithmetic mean")
    ax.axvline(means["geometric"], color="k", ls=":", label="geometric mean")
    ax.set_xscale("log")
    ax.set_xlabel("generation ratio Rg = completion / prompt tokens")
    ax.set_ylabel("conversations")
    ax.legend(fontsize=7)
    return fig
