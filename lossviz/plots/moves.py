"""Moving a kept picture to new numbers without redoing work that did not change.

A picture an explorer keeps is moved on every slider step. Setting an axis range or a colour
scale runs matplotlib's callbacks (a colour bar rebuilds its ramp, ~6 ms) even when the value is
the one already set; these setters skip a value that is already there. :class:`FixedScaleBar` is a
colour bar whose ramp never rebuilds, and :func:`axis_layers` splits an axis into the layers a
:class:`~lossviz.widgets.Canvas` draws once per state (its ticks, its label).
"""

from __future__ import annotations

from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

__all__ = [
    "AxisTicks",
    "FixedScaleBar",
    "axis_layers",
    "set_clim",
    "set_extent",
    "set_xlim",
    "set_ylim",
]


def set_xlim(ax, lo: float, hi: float) -> None:
    """``ax.set_xlim(lo, hi)`` unless those are its x limits already."""
    if tuple(ax.get_xlim()) != (lo, hi):
        ax.set_xlim(lo, hi)


def set_ylim(ax, lo: float, hi: float) -> None:
    """``ax.set_ylim(lo, hi)`` unless those are its y limits already."""
    if tuple(ax.get_ylim()) != (lo, hi):
        ax.set_ylim(lo, hi)


def set_clim(mappable, lo: float, hi: float) -> None:
    """``mappable.set_clim(lo, hi)`` unless that is its colour scale already."""
    if tuple(mappable.get_clim()) != (lo, hi):
        mappable.set_clim(lo, hi)


def set_extent(image, extent: tuple[float, float, float, float]) -> None:
    """``image.set_extent(extent)`` unless that is its extent already."""
    if tuple(image.get_extent()) != tuple(extent):
        image.set_extent(extent)


class FixedScaleBar:
    """A colour bar whose ramp is drawn once: its mappable stays on ``[0, 1]`` and only its tick
    labels follow the data's top (:meth:`show`), so a new top never rebuilds the ramp (a colour
    bar tied to a moving image rebuilds it on every change of scale)."""

    def __init__(self, fig, cax, cmap, label: str) -> None:
        self.colorbar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap), cax=cax)
        self.colorbar.set_label(label)
        self.ax = cax
        self.top: float | None = None
        self.symmetric = False

    def show(self, top: float, *, symmetric: bool = False) -> None:
        """Label the ramp's ends 0 and ``top`` (and tick its middle); ``symmetric``: the ramp runs
        from ``-top`` to ``top``, its middle labelled 0."""
        if (top, symmetric) == (self.top, self.symmetric):
            return
        # the ends labelled, a tick between: a new top draws two or three short texts
        labels = [f"{-top:g}", "0", f"{top:g}"] if symmetric else ["0", "", f"{top:g}"]
        self.ax.set_yticks([0.0, 0.5, 1.0], labels)
        self.top, self.symmetric = top, symmetric


class AxisTicks:
    """An axis drawn without its label: its ticks, tick labels and grid lines.

    A picture's layer for an axis whose range moves: the label (which does not move, placed with
    ``set_label_coords``) is its own layer, so a new range draws only the ticks, and text is most
    of what an axis costs to draw. Has what a layer needs of an artist: ``draw`` and
    ``set_animated``.
    """

    def __init__(self, axis) -> None:
        self.axis = axis

    def draw(self, renderer) -> None:
        label = self.axis.label
        shown = label.get_visible()
        label.set_visible(False)
        try:
            self.axis.draw(renderer)
        finally:
            label.set_visible(shown)

    def set_animated(self, animated: bool) -> None:
        self.axis.set_animated(animated)


def axis_layers(name: str, axis, key) -> list[tuple[str, object, list]]:
    """The two layers of ``axis`` for a picture's ``layers()``: its ticks (drawn once per
    ``key``, what decides them: its range) and its label (once per text)."""
    return [
        (f"{name}.ticks", key, [AxisTicks(axis)]),
        (f"{name}.label", axis.label.get_text(), [axis.label]),
    ]
