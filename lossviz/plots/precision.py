"""Precision plots: relative error of a reduction vs token count, per dtype (data in, Figure out).

:func:`error_curves_figure` is the pure picture. :class:`ErrorCurvesCanvas` draws the same picture
for an explorer: the curves only change with dtype and reduction, so it renders them once to pixels
and, when only the token marker moves, reuses one Figure that holds those pixels and the marker line.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["ErrorCurvesPicture", "error_curves_figure"]

_COLORS = {"float32": "tab:blue", "bfloat16": "tab:orange", "float16": "tab:red"}
_FLOOR, _CEIL = -10, 1  # log10 edges: an exact result (error 0) and an overflow (inf) sit on them
_COUNT_LABELS = {0: "1", 1: "10", 2: "100", 3: "1k", 4: "10k", 5: "100k", 6: "1M", 7: "10M"}
_SIZE = (8.0, 3.6)
_AXES_RECT = (0.1, 0.15, 0.62, 0.74)  # left, bottom, width, height: the legend sits to the right
_MARKER = {"color": "0.3", "lw": 0.8, "ls": ":", "zorder": 4}  # above curves and the edge note


def _draw_curves(
    fig: Figure,
    ns: np.ndarray,
    errors: Mapping[tuple[str, str], np.ndarray],
    title: str,
    marker: bool = True,
):
    """Curves, overflow crosses, every decade ticked, the legend right of the axes.

    The legend names the token-count marker only where a marker is drawn (``marker``).
    """
    ax = fig.add_axes(_AXES_RECT)
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
    # log10 values on a linear axis, labelled as the counts and errors they stand for
    ax.set_xticks(range(0, top + 1), [_COUNT_LABELS.get(k, f"1e{k}") for k in range(0, top + 1)])
    ax.set_yticks(range(-9, _CEIL, 3), ["1e-9", "1e-6", "1e-3", "1"])
    ax.set_yticks(range(_FLOOR, _CEIL + 1), minor=True)
    ax.set_xlim(-0.1, top + 0.1)
    ax.set_ylim(_FLOOR - 0.3, _CEIL + 0.3)
    ax.set_xlabel("tokens summed (log scale)")
    ax.set_ylabel("relative error vs float64 (log scale)")
    ax.grid(alpha=0.3)
    ax.text(0.1, _CEIL - 0.1, "top edge: overflow (inf)", fontsize=8, va="top", color="0.3")
    ax.text(0.1, _FLOOR + 0.1, "bottom edge: exact", fontsize=8, va="bottom", color="0.3")
    if title:
        ax.set_title(title, fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    if marker:
        handles.append(Line2D([], [], **_MARKER))
        labels.append("your token count")
    fig.legend(
        handles, labels, loc="center left", bbox_to_anchor=(0.74, 0.55), frameon=False, fontsize=9
    )
    return ax


class ErrorCurvesPicture:
    """Relative error vs token count for these curves, with a marker line an explorer moves.

    ``errors[(dtype, method)] -> [K]`` at ``ns: [K]``. :meth:`update` moves the marker to a token
    count (``None`` hides it); the marker is the only ``dynamic`` artist. ``marker=False`` leaves
    the marker out of the legend (a picture that never shows one).
    """

    def __init__(
        self,
        ns: np.ndarray,
        errors: Mapping[tuple[str, str], np.ndarray],
        *,
        title: str = "",
        dpi: int = 80,
        marker: bool = True,
    ) -> None:
        self.fig = Figure(figsize=_SIZE, dpi=dpi)
        self.ax = _draw_curves(self.fig, ns, errors, title, marker)
        self.marker = self.ax.axvline(0.0, **_MARKER)
        self.dynamic = [self.marker]

    def static_key(self) -> tuple:
        return ()

    def update(self, marker_n: int | None = None) -> Figure:
        """Put the marker at ``marker_n`` tokens; returns the Figure."""
        if marker_n is None:
            self.marker.set_visible(False)
        else:
            x = float(np.log10(marker_n))
            self.marker.set_xdata([x, x])
            self.marker.set_visible(True)
        return self.fig


def error_curves_figure(
    ns: np.ndarray,
    errors: Mapping[tuple[str, str], np.ndarray],
    *,
    marker_n: int | None = None,
    title: str = "",
) -> Figure:
    """Relative error vs token count, both on log10 scales; ``errors[(dtype, method)] -> [K]``.

    Solid lines: ``torch`` reductions; dashed: a ``sequential`` running total. Overflow (inf) is drawn
    as crosses on the top edge, an exact result on the bottom edge. The axes hold log10 values with
    plain tick labels, which renders several times faster than matplotlib's log axes. The legend
    lists "your token count" only when ``marker_n`` draws that line.
    """
    picture = ErrorCurvesPicture(ns, errors, title=title, marker=marker_n is not None)
    return picture.update(marker_n)
