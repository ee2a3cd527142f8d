"""Chat pictures: a token strip coloured by weight with each token's role, per-turn weight bars,
the completion's share of the weight against the prompt weight, and the spread of the generation ratio.

Pure functions: data in, ``matplotlib.figure.Figure`` out, no pyplot state. Each ``draw_*`` function
draws into a given ``Axes`` so a widget can combine them in one small figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import Affine2D

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
_ZERO_COLOR = "#efefef"  # an untrained token: visible, but clearly not green
_LABEL_LIMIT = 160  # beyond this many tokens, labels would be unreadable and slow to draw


def _label(piece: str) -> str:
    return {"\n": "\u21b5", "\n\n": "\u21b5\u21b5", "<|im_start|>": "<s|", "<|im_end|>": "|e>"}.get(
        piece, piece.replace("\u2581", "\u00b7")
    )


def _boxes(x: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """``[N, 4, 2]`` corners of N cells of width 0.96 (the gap separates the cells)."""
    y0, y1 = np.broadcast_to(y0, x.shape), np.broadcast_to(y1, x.shape)
    return np.stack(
        [
            np.stack([x, y0], 1),
            np.stack([x + 0.96, y0], 1),
            np.stack([x + 0.96, y1], 1),
            np.stack([x, y1], 1),
        ],
        axis=1,
    )


def _strip_geometry(rows, templates, per_row, vmax):
    """Cells, colours, role bands and label positions of a token strip, in cell units (y down).

    Vectorised with numpy: the explorer redraws strips of several hundred tokens per update.
    """
    weights_all = np.concatenate([np.asarray(w, dtype=float) for _, _, w in rows])
    top = float(vmax if vmax is not None else max(weights_all.max(initial=0.0), 1e-12))
    colors = matplotlib.colormaps["Greens"](0.1 + 0.5 * np.clip(weights_all / top, 0.0, 1.0))
    colors[weights_all <= 0] = mcolors.to_rgba(_ZERO_COLOR)
    role_rgba = {r: mcolors.to_rgba(c) for r, c in ROLE_COLORS.items()}
    band_colors = [role_rgba[r] for _, roles, _ in rows for r in roles]
    cells, bands, labels = [], [], []
    y = 0.0
    for k, (pieces, _, _) in enumerate(rows):
        t = np.arange(len(pieces))
        x, yy = (t % per_row).astype(float), y + (t // per_row) * 1.4
        short = np.zeros(len(pieces)) if templates is None else np.asarray(templates[k], float)
        cells.append(_boxes(x, yy + 0.35 * short, yy + 1.0))
        bands.append(_boxes(x, yy + 1.02, yy + 1.27))
        labels += [
            (xi + 0.48, yi + 0.5, _label(p)) for xi, yi, p in zip(x, yy, pieces, strict=True)
        ]
        y += ((len(pieces) - 1) // per_row + 1) * 1.4 + 0.6
    # one PolyCollection per layer: hundreds of Rectangle patches would each build transforms
    layers = [
        PolyCollection(np.concatenate(cells), facecolors=colors, edgecolors="none"),
        PolyCollection(np.concatenate(bands), facecolors=band_colors, edgecolors="none"),
    ]
    return layers, labels, y


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
    layers, label_specs, height = _strip_geometry(rows, templates, per_row, vmax)
    for layer in layers:
        ax.add_collection(layer)
    if labels if labels is not None else len(label_specs) <= _LABEL_LIMIT:
        for x, y, text in label_specs:
            ax.text(x, y, text, ha="center", va="center", fontsize=6)
    ax.set_xlim(-0.2, per_row + 0.2)
    ax.set_ylim(height, -0.2)
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
    fig = Figure(figsize=(7.5, 0.75 + 0.32 * n_lines))
    ax = fig.add_axes((0.01, 0.01, 0.98, (0.32 * n_lines) / (0.75 + 0.32 * n_lines)))
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
) -> Figure:
    """The explorer's picture: token strips on top, one bar per turn below (colour = role).

    No Axes and no text: ticks, spines and glyphs cost most of a small figure's drawing time, so
    strips and bars are collections placed straight on the figure (< 100 ms per redraw); the
    widget prints the numbers under the picture.
    """
    layers, _, strip_h = _strip_geometry(rows, templates, per_row, None)
    top = max(max(totals), 1e-12)
    n, bar_h = len(totals), 0.45 * max(strip_h, 6.0)
    width = per_row / max(n, 1)
    base = strip_h + 1.2 + bar_h
    height = base + 2.2
    fig = Figure(figsize=(7.5, 4.2))
    # cell units (x right, y down) -> figure fraction, with a small margin
    to_fig = Affine2D().translate(0.3, 0.3).scale(0.98 / (per_row + 0.6), -0.98 / (height + 0.6))
    transform = to_fig.translate(0.01, 0.99) + fig.transFigure
    bars = []
    for k, value in enumerate(totals):
        x0, h = k * width + 0.1 * width, bar_h * value / top
        bars.append(
            [(x0, base), (x0 + 0.8 * width, base), (x0 + 0.8 * width, base - h), (x0, base - h)]
        )
    colors = [ROLE_COLORS[r] for r in turn_roles]
    # a baseline, so a turn with zero weight still shows where its bar would be
    bars.append([(0, base), (per_row, base), (per_row, base + 0.12), (0, base + 0.12)])
    colors.append("#999999")
    layers.append(PolyCollection(bars, facecolors=colors, edgecolors="none"))
    for layer in layers:
        layer.set_transform(transform)
        fig.add_artist(layer)
    return fig


def share_curves(
    ratios: Mapping[str, float], prompt_weights: Sequence[float], shares: Mapping[str, Sequence]
) -> Figure:
    """Completion share ``Rg / (Rg + plw)`` against plw, one line per labelled Rg.

    ``prompt_weights: [K]`` and each ``shares[label]: [K]``. plw > 0 goes on a log axis from the
    smallest positive plw to the largest; plw = 0 (completion only) is drawn as dots on a narrow
    axis of its own at the left: a log axis has no 0, and a symlog axis's switch from linear to log
    draws a kink the curve does not have.
    """
    plw = np.asarray(prompt_weights, dtype=float)
    if plw.ndim != 1 or not np.all(np.isfinite(plw)) or np.any(plw < 0):
        raise ValueError("prompt_weights must be a 1-D sequence of finite values >= 0")
    positive = plw > 0
    if not positive.any():
        raise ValueError("prompt_weights needs at least one value > 0 to draw the log axis")
    fig = Figure(figsize=(6.0, 3.2))
    ax = fig.add_axes((0.2, 0.15, 0.77, 0.81))  # fixed placement: no layout engine
    zero = fig.add_axes((0.11, 0.15, 0.06, 0.81), sharey=ax)
    for j, (label, rg) in enumerate(ratios.items()):
        y = np.asarray(shares[label], dtype=float)
        if y.shape != plw.shape:
            raise ValueError(f"shares[{label!r}] has {y.shape}, prompt_weights {plw.shape}")
        ax.plot(plw[positive], y[positive], color=f"C{j}", label=f"{label} (Rg = {rg:.3g})")
        zero.plot(np.zeros(int((~positive).sum())), y[~positive], "o", color=f"C{j}", ms=4)
    ax.set_xscale("log")
    lo, hi = plw[positive].min(), plw[positive].max()
    decade = 10.0 ** np.round(np.log10(lo))
    lo = decade if np.isclose(lo, decade, rtol=1e-6) else lo  # float32 1e-3: keep its tick
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, 1.02)
    ax.tick_params(labelleft=False)
    ax.set_xlabel("prompt loss weight plw (log scale)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    zero.set_xlim(-1, 1)
    zero.set_xticks([0], ["0"])
    zero.set_ylabel("completion's share of the weight")
    zero.grid(alpha=0.3)
    return fig


def ratio_histogram(ratios_by_kind: Mapping[str, Sequence[float]], means: Mapping) -> Figure:
    """Histogram of Rg on a log axis, stacked by kind, with arithmetic and geometric means marked.

    ``means`` holds ``"arithmetic"`` and ``"geometric"``, and optionally ``"pooled"`` (``Σc / Σp``).
    """
    fig = Figure(figsize=(6.0, 3.0))
    fig.subplots_adjust(left=0.1, right=0.97, top=0.96, bottom=0.16)
    ax = fig.add_subplot()
    every = np.concatenate([np.asarray(v, dtype=float) for v in ratios_by_kind.values()])
    bins = np.logspace(np.log10(every.min()) - 0.1, np.log10(every.max()) + 0.1, 25)
    ax.hist(list(ratios_by_kind.values()), bins=bins, stacked=True, label=list(ratios_by_kind))
    ax.axvline(means["arithmetic"], color="k", ls="--", label="arithmetic mean")
    ax.axvline(means["geometric"], color="k", ls=":", label="geometric mean")
    if "pooled" in means:  # sum(c) / sum(p): what a token mean over the set sees
        ax.axvline(means["pooled"], color="k", ls="-", label="pooled Σc / Σp")
    ax.set_xscale("log")
    ax.set_xlabel("generation ratio Rg = completion / prompt tokens")
    ax.set_ylabel("conversations")
    ax.legend(fontsize=7)
    return fig
