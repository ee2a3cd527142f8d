"""Precision plots: relative error of a reduction vs token count, per dtype (data in, Figure out).

:func:`error_curves_figure` is the pure picture. :class:`ErrorCurvesCanvas` draws the same picture
for an explorer: the curves only change with dtype and reduction, so it renders them once to pixels
and, when only the token marker moves, reuses one Figure that holds those pixels and the marker line.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["ErrorCurvesCanvas", "error_curves_figure"]

_COLORS = {"float32": "tab:blue", "bfloat16": "tab:orange", "float16": "tab:red"}
_FLOOR, _CEIL = -10, 1  # log10 edges: an exact result (error 0) and an overflow (inf) sit on them
_COUNT_LABELS = {0: "1", 1: "10", 2: "100", 3: "1k", 4: "10k", 5: "100k", 6: "1M", 7: "10M"}
_SIZE = (6.4, 3.0)
_AXES_RECT = (0.1, 0.16, 0.62, 0.74)  # left, bottom, width, height: the legend sits to the right
_MARKER = {"color": "0.3", "lw": 0.8, "ls": ":", "zorder": 4}  # above curves and the edge note


def _draw_curves(
    fig: Figure, ns: np.ndarray, errors: Mapping[tuple[str, str], np.ndarray], title: str
):
    """The static part: curves, overflow crosses, few ticks, legend outside the axes."""
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
    # every other decade labelled: each tick label costs about a millisecond per redraw
    ax.set_xticks(
        range(0, top + 1, 2), [_COUNT_LABELS.get(k, f"1e{k}") for k in range(0, top + 1, 2)]
    )
    ax.set_xticks(range(1, top + 1, 2), minor=True)
    ax.set_yticks(range(-9, _CEIL, 3), ["1e-9", "1e-6", "1e-3", "1"])
    ax.set_xlim(-0.1, top + 0.1)
    ax.set_ylim(_FLOOR - 0.3, _CEIL + 0.3)
    ax.set_xlabel("tokens summed (log scale)", fontsize=8)
    ax.set_ylabel("relative error vs float64", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.text(0.1, _CEIL - 0.1, "top edge: overflow (inf)", fontsize=7, va="top", color="0.3")
    if title:
        ax.set_title(title, fontsize=9)
    # a hand-placed key right of the axes (the moving marker never crosses it): matplotlib's
    # legend lays itself out through offset boxes, several times the cost of these few artists
    left, bottom, width, height = _AXES_RECT
    for line in [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]:
        y = bottom + height - 0.06 - 0.085 * len(fig.texts)
        key = Line2D([left + width + 0.02, left + width + 0.08], [y, y])
        key.update_from(line)  # colour and dashes; it also copies the axes' transform and clip
        key.set_transform(fig.transFigure)
        key.set_clip_on(False)
        fig.add_artist(key)
        fig.text(left + width + 0.095, y, line.get_label(), fontsize=7, va="center")
    return ax


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
    plain tick labels, which renders several times faster than matplotlib's log axes.
    """
    fig = Figure(figsize=_SIZE)
    ax = _draw_curves(fig, ns, errors, title)
    if marker_n is not None:
        ax.axvline(np.log10(marker_n), **_MARKER)
    return fig


class _Pixels(Artist):
    """An RGBA image drawn 1:1 at the figure's lower-left corner.

    ``figimage`` would do the same through masking and resampling (~4 ms a draw); the pixels
    are already the right size, so they go to the renderer as they are.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rgba: np.ndarray | None = None

    def draw(self, renderer) -> None:
        if self.rgba is None or not self.get_visible():
            return
        gc = renderer.new_gc()
        renderer.draw_image(gc, 0, 0, self.rgba)
        gc.restore()


class ErrorCurvesCanvas:
    """``canvas.figure(ns, errors, marker_n=..., title=...)``: the picture of :func:`error_curves_figure`.

    The curves are drawn once per distinct ``(ns, errors, title)`` to an RGBA image (kept for up to
    ``maxsize`` of them); the returned Figure, reused between calls, holds that image and the marker
    line, so moving the marker redraws a few thousand pixels, not every tick label. Render the
    Figure at ``dpi`` (the image is in pixels and is not rescaled).
    """

    def __init__(self, dpi: int = 80, maxsize: int = 12) -> None:
        self.dpi, self.maxsize = dpi, maxsize
        self._backgrounds: dict[tuple, tuple[np.ndarray, tuple[float, float, float, float]]] = {}
        self._fig = Figure(figsize=_SIZE, dpi=dpi)
        self._image = _Pixels()
        self._fig.add_artist(self._image)
        self._marker = Line2D([0, 0], [0, 1], transform=self._fig.transFigure, **_MARKER)
        self._fig.add_artist(self._marker)

    def _background(self, ns, errors, title):
        key = (
            np.asarray(ns, dtype=np.float64).tobytes(),
            title,
            tuple((k, np.asarray(v, dtype=np.float64).tobytes()) for k, v in errors.items()),
        )
        if key not in self._backgrounds:
            fig = Figure(figsize=_SIZE, dpi=self.dpi)
            ax = _draw_curves(fig, ns, errors, title)
            canvas = FigureCanvasAgg(fig)
            canvas.draw()
            # bottom row first, the order Agg's draw_image expects
            rgba = np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[::-1])
            # where data x lands in figure fraction, and the axes' vertical span (for the marker)
            (x0, y0), (x1, y1) = fig.transFigure.inverted().transform(
                ax.transData.transform([(0.0, ax.get_ylim()[0]), (1.0, ax.get_ylim()[1])])
            )
            if len(self._backgrounds) >= self.maxsize:
                self._backgrounds.pop(next(iter(self._backgrounds)))
            self._backgrounds[key] = (rgba, (x0, x1 - x0, y0, y1))
        return self._backgrounds[key]

    def figure(
        self,
        ns: np.ndarray,
        errors: Mapping[tuple[str, str], np.ndarray],
        *,
        marker_n: int | None = None,
        title: str = "",
    ) -> Figure:
        """The reused Figure showing these curves and a marker at ``marker_n`` (none if None)."""
        rgba, (x0, per_decade, y0, y1) = self._background(ns, errors, title)
        self._image.rgba = rgba
        if marker_n is None:
            self._marker.set_visible(False)
        else:
            x = x0 + per_decade * float(np.log10(marker_n))
            self._marker.set_data([x, x], [y0, y1])
            self._marker.set_visible(True)
        return self._fig
