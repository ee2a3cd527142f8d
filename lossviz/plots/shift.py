"""A picture of the causal shift: the logits at position ``t`` are scored on the next token.

Pure function: numbers in (the input tokens and the label each position got, e.g. from
``lv.shift_labels``), a ``matplotlib.figure.Figure`` out (no pyplot state). The picture never shifts
anything itself; it checks that the labels it is given are the tokens moved one step left (or the
ignore index) and draws them.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["IGNORED_COLOR", "TRAINED_COLOR", "shift_figure"]

IGNORED_COLOR = "#d9d9d9"  # a position whose label is the ignore index: no loss, no gradient
TRAINED_COLOR = "#9ecae1"  # a position with a label: it has a token loss l[t]
_INPUT_COLOR, _LOGIT_COLOR = "#ffffff", "#fdd0a2"
_ROWS = {"input": 2.0, "logits": 1.0, "label": 0.0}


def _as_ints(name: str, values: Sequence[int]) -> list[int]:
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a sequence of integers (token ids); got {values!r}"
        ) from None
    if any(o != v for o, v in zip(out, values, strict=True)):
        raise ValueError(f"{name} must hold whole numbers (token ids); got {list(values)!r}")
    return out


def _box(ax, x: float, y: float, text: str, color: str, *, hatch: str | None = None):
    ax.add_patch(
        FancyBboxPatch(
            (x - 0.38, y - 0.27),
            0.76,
            0.54,
            boxstyle="round,pad=0.02",
            facecolor=color,
            edgecolor="#555555",
            hatch=hatch,
            linewidth=1.0,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=10)


def _arrow(ax, start, end, *, style: str = "-|>", dashed: bool = False, color: str = "#444444"):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=12,
            linestyle="--" if dashed else "-",
            color=color,
            linewidth=1.0,
            shrinkA=0,
            shrinkB=0,
        )
    )


def shift_figure(
    tokens: Sequence[int],
    labels: Sequence[int],
    *,
    ignore_index: int = -100,
    title: str = "",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw the causal shift of one row: ``tokens: [T]`` in, ``labels: [T]`` with ``labels[t] = tokens[t+1]``.

    Three rows: the input token ``y_t`` at each position, the logits the model computes there
    (arrow up), and the label scored against them: the next token ``y_{t+1}`` (dashed line back to
    where it sits in the input) or ``ignore_index`` (grey, hatched: no loss, no gradient). The last
    position has no next token; its column is marked as the one transformers drops (T-1 pairs).
    Raises ``ValueError`` if the lengths differ, the row is empty, or a label is neither the next
    token nor ``ignore_index`` (shift the labels first, e.g. with ``lv.shift_labels``).
    """
    tokens = _as_ints("tokens", tokens)
    labels = _as_ints("labels", labels)
    if not tokens:
        raise ValueError("tokens is empty: pass at least one token id")
    if len(labels) != len(tokens):
        raise ValueError(
            f"labels has {len(labels)} entries and tokens {len(tokens)}: pass one label per "
            "position (the tokens shifted one step left, ignore_index at the end)"
        )
    T = len(tokens)
    for t, label in enumerate(labels):
        nxt = tokens[t + 1] if t + 1 < T else None
        if label != ignore_index and label != nxt:
            raise ValueError(
                f"labels[{t}] = {label} is neither the next token ({nxt}) nor ignore_index "
                f"({ignore_index}): shift the labels first (lv.shift_labels)"
            )
    fig = Figure(figsize=figsize or (1.35 * T + 2.4, 3.4))
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.88 if title else 1.0))
    ax.set_xlim(-2.3, T + 0.05)
    ax.set_ylim(-0.95, 2.75)
    ax.axis("off")
    names = {
        "input": "input token $y_t$",
        "logits": "logits at $t$",
        "label": "label at $t$",
    }
    for row, y in _ROWS.items():
        ax.text(-0.55, y, names[row], ha="right", va="center", fontsize=10)
    for t in range(T):
        ax.text(t, 2.42, f"t = {t}", ha="center", va="bottom", fontsize=9, color="#555555")
        _box(ax, t, _ROWS["input"], f"$y_{{{t}}}$ = {tokens[t]}", _INPUT_COLOR)
        _box(ax, t, _ROWS["logits"], f"p(· | $y_{{\\leq {t}}}$)", _LOGIT_COLOR)
        _arrow(ax, (t, _ROWS["input"] - 0.27), (t, _ROWS["logits"] + 0.27))
        ignored = labels[t] == ignore_index
        _box(
            ax,
            t,
            _ROWS["label"],
            str(labels[t]) if ignored else f"$y_{{{t + 1}}}$ = {labels[t]}",
            IGNORED_COLOR if ignored else TRAINED_COLOR,
            hatch="///" if ignored else None,
        )
        _arrow(ax, (t, _ROWS["logits"] - 0.27), (t, _ROWS["label"] + 0.27), style="-")
        if t + 1 < T and not ignored:  # the label is the next input token: show where it comes from
            _arrow(
                ax,
                (t + 1 - 0.3, _ROWS["input"] - 0.27),
                (t + 0.3, _ROWS["label"] + 0.27),
                dashed=True,
                color="#2171b5",
            )
    ax.text(
        T - 1,
        -0.55,
        "no next token:\ntransformers drops it",
        ha="center",
        va="top",
        fontsize=8,
        color="#555555",
    )
    n_trained = sum(label != ignore_index for label in labels)
    ax.text(
        -0.55,
        -0.7,
        f"blue: trained ({n_trained})\ngrey: {ignore_index} ({T - n_trained})",
        ha="right",
        va="center",
        fontsize=8,
    )
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
