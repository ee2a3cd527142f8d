"""Precision plots: relative error of a reduction vs token count, per dtype (data in, Figure out)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["error_curves_figure"]

_COLORS = {"float32": "tab:blue", "bfloat16": "tab:orange", "float16": "tab:red"}
_FLOOR, _CEIL = -10, 1  # log10 edges: an exact result (error 0) and an overflow (inf) sit on them
_COUNT_LABELS = {0: "1", 1: "10", 2: "100", 3: "1k", 4: "10k", 5: "100k", 6: "1M", 7: "10M"}


def error_curves_figure(
    ns: np.ndarray,
    errors: dict[tuple[str, str], np.ndarray],
    *,
    marker_n: int | None = None,
    title: str = "",
) -> Figure:
    """Relative error vs token count, both on log10 scales; ``errors[(dtype, method)] -> [K]``.

    Solid lines: ``torch`` reductions; dashed: a ``sequential`` running total. Overflow (inf) is drawn
    as crosses on the top edge, an exact result on the bottom edge. The axes hold log10 values with
    plain tick labels, which renders several times faster than matplotlib's log axes.
    """
    fig = Figure(figsize=(6.4, 3.0))
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.9)
    ax = fig.add_subplot()
    x = np.log10(np.asarray(ns, dtype=np.float64))
    for (dtype, method), err in errors.items():
        err = np.asarray(err, dtype=np.float64)
        finite = np.isfinite(err)
        with np.errstate(divide="ignore"):
            y = np.clip(np.where(finite, np.log10(err), _CEIL), _FLOOR, _CEIL)
        style = "-" if method == "torch" else "--"
        color = _COLORS.get(dtype, "k")
        ax.plot(x, y, style, color=color, lw=1.4, label=f"{dtype} {method}")
        if (~finite).any():
            ax.plot(x[~finite], y[~finite], "x", color=color, ms=5)
    top = int(np.ceil(x.max()))
    ax.set_xticks(range(top + 1), [_COUNT_LABELS.get(k, f"1e{k}") for k in range(top + 1)])
    ax.set_yticks(range(_FLOOR, _CEIL + 1, 2), [f"1e{k}" for k in range(_FLOOR, _CEIL + 1, 2)])
    ax.set_ylim(_FLOOR - 0.3, _CEIL + 0.3)
    ax.set_xlabel("tokens summed (log scale)", fontsize=8)
    ax.set_ylabel("relative error vs float64", fontsize=8)
    ax.tick_params(labelsize=7)
    if marker_n is not None:
        ax.axvline(np.log10(marker_n), color="0.3", lw=0.8, ls=":")
    ax.text(0, _CEIL - 0.1, "top edge: overflow (inf)", fontsize=7, va="top", color="0.3")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return fig
