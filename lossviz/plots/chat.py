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

from .moves import FixedScaleBar, axis_layers, set_xlim, set_ylim
from .reductions import nice_ceiling

__all__ = [
    "ROLE_COLORS",
    "GLYPH_KEY",
    "draw_token_strip",
    "draw_turn_bars",
    "token_strip",
    "ChatPicture",
    "chat_weights_figure",
    "share_curves",
    "ratio_histogram",
]

ROLE_COLORS = {"system": "#9e9e9e", "user": "#f28e2b", "assistant": "#4e79a7"}
_ZERO_COLOR = "#efefef"  # an untrained token: visible, but clearly not green
_LABEL_LIMIT = 160  # beyond this many tokens, labels would be unreadable and slow to draw
# token weight 0 .. top -> the light half of Greens (dark greens would hide the role band)
_WEIGHT_CMAP = mcolors.ListedColormap(matplotlib.colormaps["Greens"](np.linspace(0.1, 0.6, 256)))


# how a piece is written on its cell: ChatML's markers by their names, whitespace made visible
_GLYPHS = {
    "\n": "\u21b5",
    "\n\n": "\u21b5\u21b5",
    "<|im_start|>": "im_start",
    "<|im_end|>": "im_end",
}
GLYPH_KEY = "im_start / im_end: ChatML's <|im_start|> / <|im_end|>;  \u21b5 newline;  \u00b7 space"
_CELL_CHARS = 9  # a label of up to this many characters fits a cell at the strip's font size


def _label(piece: str) -> str:
    return _GLYPHS.get(piece, piece.replace("\u2581", "\u00b7"))


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


def _weight_colors(weights: np.ndarray, top: float) -> np.ndarray:
    """``[N, 4]`` RGBA of token weights on the strip's green scale; weight 0 is light grey."""
    colors = _WEIGHT_CMAP(np.clip(weights / top, 0.0, 1.0))
    colors[weights <= 0] = mcolors.to_rgba(_ZERO_COLOR)
    return colors


def _strip_geometry(rows, templates, per_row, vmax):
    """Cells, colours, role bands and label positions of a token strip, in cell units (y down).

    Returns ``(cells [N, 4, 2], colours [N, 4], bands [N, 4, 2], band colours, labels, height,
    line_starts)``, ``line_starts`` holding ``(y, example, first token)`` of every wrapped line.
    Vectorised with numpy: the explorer redraws strips of several hundred tokens per update.
    """
    weights_all = np.concatenate([np.asarray(w, dtype=float) for _, _, w in rows])
    top = float(vmax if vmax is not None else max(weights_all.max(initial=0.0), 1e-12))
    colors = _weight_colors(weights_all, top)
    role_rgba = {r: mcolors.to_rgba(c) for r, c in ROLE_COLORS.items()}
    band_colors = [role_rgba[r] for _, roles, _ in rows for r in roles]
    cells, bands, labels, starts = [], [], [], []
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
        lines = (len(pieces) - 1) // per_row + 1
        starts += [(y + i * 1.4, k, i * per_row) for i in range(lines)]
        y += lines * 1.4 + 0.6
    return np.concatenate(cells), colors, np.concatenate(bands), band_colors, labels, y, starts


def draw_token_strip(
    ax,
    rows: Sequence[tuple[Sequence[str], Sequence[str], Sequence[float]]],
    templates: Sequence[Sequence[bool]] | None = None,
    *,
    per_row: int = 24,
    vmax: float | None = None,
    labels: bool | None = None,
    legend: bool = True,
    fontsize: float = 6,
) -> None:
    """Tokens left to right, wrapped every ``per_row``: cell colour = weight, thin band = role.

    ``rows``: one ``(pieces, roles, weights)`` per example (each ``[T_k]``); examples stack downwards.
    ``templates`` (optional, per example): template tokens are drawn as shorter cells. Labels are
    drawn when ``labels`` is True (default: up to 160 tokens); they dominate the drawing time.
    """
    cells, colors, bands, band_colors, label_specs, height, _ = _strip_geometry(
        rows, templates, per_row, vmax
    )
    # one PolyCollection per layer: hundreds of Rectangle patches would each build transforms
    ax.add_collection(PolyCollection(cells, facecolors=colors, edgecolors="none"))
    ax.add_collection(PolyCollection(bands, facecolors=band_colors, edgecolors="none"))
    if labels if labels is not None else len(label_specs) <= _LABEL_LIMIT:
        for x, y, text in label_specs:  # a long piece gets a smaller font, never a wider cell
            size = fontsize * min(1.0, _CELL_CHARS / max(len(text), 1))
            ax.text(x, y, text, ha="center", va="center", fontsize=size)
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
        fontsize=fontsize + 1,
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
    per_row: int = 12,
    title: str = "",
) -> Figure:
    """A one-example token strip: each token coloured by its weight, its role in the band below.

    ``pieces, roles, weights: [T]``. Each cell is 0.75 inch wide and its label shrinks to fit it,
    so no two labels overlap; a key under the title explains the glyphs
    (``im_start``, ``\u21b5``, ``\u00b7``).
    """
    n_lines = (len(pieces) - 1) // per_row + 1
    body = 0.52 * n_lines  # inches: a line of cells and its role band
    height = 1.1 + body
    fig = Figure(figsize=(0.75 * per_row + 0.2, height))
    ax = fig.add_axes((0.01, 0.01, 0.98, body / height))
    draw_token_strip(
        ax, [(pieces, roles, weights)], templates and [templates], per_row=per_row, fontsize=9
    )
    fig.text(
        0.5,
        1 - 0.62 / height,
        GLYPH_KEY + ";  short cell: template token",
        ha="center",
        va="center",
        fontsize=8.5,
        color="0.25",
    )
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.05 / height, va="top")
    return fig


class ChatPicture:
    """The chat explorer's picture: token strips on top, one bar per turn below.

    Strip: each token a cell coloured by its weight (colour bar), a thin band below it in its
    role's colour, template tokens as shorter cells; lines wrap every ``per_row`` tokens and the
    y axis names each line's example and first token. Bars: each turn's share of the loss (or
    total weight), coloured by role. :meth:`update` moves cells, bands, bars, the names of lines
    and turns and both scales (``dynamic``); ``static_key()`` names the rest (the bars' title),
    so an explorer's :class:`~lossviz.widgets.Canvas` redraws only what moved.
    """

    def __init__(self, per_row: int = 32, *, dpi: int = 80) -> None:
        self.per_row = per_row
        self.fig = fig = Figure(figsize=(9.0, 5.2), dpi=dpi)
        self.strip = strip = fig.add_axes((0.13, 0.52, 0.74, 0.37))
        cax = fig.add_axes((0.885, 0.52, 0.015, 0.37))
        self.bars_ax = bars_ax = fig.add_axes((0.13, 0.1, 0.74, 0.25))
        self.cells = PolyCollection([], edgecolors="none")
        self.bands = PolyCollection([], edgecolors="none")
        strip.add_collection(self.cells)
        strip.add_collection(self.bands)
        strip.set_xlim(-0.2, per_row + 0.2)
        strip.set_xticks(range(0, per_row + 1, 8))
        strip.set_xlabel(f"token position within the line ({per_row} tokens a line)")
        strip.tick_params(left=False)
        strip.set_title("each token's weight W (cell colour) and role (band under it)", fontsize=11)
        self.scale = FixedScaleBar(fig, cax, _WEIGHT_CMAP, "token weight W")
        self.scale.show(1.0)
        cax.yaxis.set_label_coords(1 + 0.42 / 0.135, 0.5)  # right of labels such as 0.025
        strip.yaxis.set_label_coords(-0.15 / 0.74, 0.5)
        self.turn_bars = PolyCollection([], edgecolors="none")
        bars_ax.add_collection(self.turn_bars)
        self.zero = bars_ax.axhline(0.0, color="#999999", lw=1.0)
        bars_ax.set_xlabel("turn (message) and its role")
        bars_ax.xaxis.set_label_coords(0.5, -0.3 / 1.3)  # fixed, under the turns' names
        bars_ax.yaxis.set_label_coords(-0.06 / 0.74, 0.5)  # left of labels such as 0.25
        bars_ax.grid(axis="y", color="#dddddd", lw=0.6)
        bars_ax.set_axisbelow(True)
        handles = [Patch(color=c, label=r) for r, c in ROLE_COLORS.items()]
        handles.append(
            Patch(facecolor=_ZERO_COLOR, edgecolor="#bbbbbb", label="weight 0 (not trained)")
        )
        handles.append(
            Patch(facecolor="none", edgecolor="none", label="short cell: template token")
        )
        fig.legend(handles=handles, loc="upper center", ncol=5, frameon=False, fontsize=9)
        # drawn on every update: the cells, bands and bars, and the lines and frames over them;
        # the axes, the colour bar's labels and the bars' title are layers (see layers())
        self.dynamic = [
            self.cells,
            self.bands,
            *strip.spines.values(),
            self.turn_bars,
            self.zero,
            *bars_ax.spines.values(),
        ]
        self._line_names: tuple[str, ...] = ()
        self._turn_names: tuple[str, ...] = ()

    def static_key(self) -> tuple:
        """Nothing outside ``dynamic`` and the layers moves: one background per picture."""
        return ()

    def layers(self) -> list[tuple[str, object, list]]:
        """The lines' and turns' names, both scales, the bars' label and title, once per state."""
        strip, bars = self.strip, self.bars_ax
        return [
            *axis_layers("strip.y", strip.yaxis, (strip.get_ylim(), self._line_names)),
            *axis_layers("scale", self.scale.ax.yaxis, self.scale.top),
            *axis_layers("bars.x", bars.xaxis, (bars.get_xlim(), self._turn_names)),
            *axis_layers("bars.y", bars.yaxis, bars.get_ylim()),
            ("bars.title", bars.title.get_text(), [bars.title]),
        ]

    def update(
        self,
        rows: Sequence[tuple[Sequence[str], Sequence[str], Sequence[float]]],
        templates: Sequence[Sequence[bool]],
        turn_roles: Sequence[str],
        totals: Sequence[float],
        *,
        ylabel: str = "share of the loss",
    ) -> Figure:
        """``rows``: one ``(pieces, roles, weights)`` per example; ``totals: [M]`` per turn."""
        weights_all = np.concatenate([np.asarray(w, dtype=float) for _, _, w in rows])
        top = nice_ceiling(float(weights_all.max(initial=0.0)))
        cells, colors, bands, band_colors, _, height, starts = _strip_geometry(
            rows, templates, self.per_row, top
        )
        self.cells.set_verts(cells)
        self.cells.set_facecolors(colors)
        self.bands.set_verts(bands)
        self.bands.set_facecolors(band_colors)
        set_ylim(self.strip, max(height, 4 * 1.4), -0.2)
        several = len(rows) > 1
        self._line_names = tuple(
            (f"ex {k}, " if several else "") + f"token {t}" for _, k, t in starts
        )
        self.strip.set_yticks([y + 0.5 for y, _, _ in starts], self._line_names)
        self.scale.show(top)
        n = len(totals)
        x = np.arange(n, dtype=float)
        h = np.asarray(totals, dtype=float)
        zero = np.zeros(n)
        corners = [
            np.stack(c, 1) for c in ((x - 0.4, zero), (x + 0.4, zero), (x + 0.4, h), (x - 0.4, h))
        ]
        self.turn_bars.set_verts(np.stack(corners, 1))
        self.turn_bars.set_facecolors([ROLE_COLORS[r] for r in turn_roles])
        set_xlim(self.bars_ax, -0.6, max(n, 4) - 0.4)
        self._turn_names = tuple(f"{k} {r}" for k, r in enumerate(turn_roles))
        self.bars_ax.set_xticks(x, self._turn_names)
        set_ylim(self.bars_ax, 0.0, nice_ceiling(1.05 * float(h.max(initial=0.0))))
        self.bars_ax.set_ylabel(ylabel)
        self.bars_ax.set_title(f"each turn's {ylabel}", fontsize=11, y=1.0)
        return self.fig


def chat_weights_figure(
    rows: Sequence[tuple[Sequence[str], Sequence[str], Sequence[float]]],
    templates: Sequence[Sequence[bool]],
    turn_roles: Sequence[str],
    totals: Sequence[float],
    *,
    per_row: int = 32,
    ylabel: str = "share of the loss",
) -> Figure:
    """The explorer's picture (:class:`ChatPicture`): token strips on top, one bar per turn below."""
    return ChatPicture(per_row).update(rows, templates, turn_roles, totals, ylabel=ylabel)


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
    fig = Figure(figsize=(7.6, 3.0))
    fig.subplots_adjust(left=0.08, right=0.72, top=0.96, bottom=0.16)  # the legend goes right
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
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig
