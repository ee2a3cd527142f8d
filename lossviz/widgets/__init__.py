"""The widgets layer: every explorer is controls wired to a pure render function (see base.py)."""

from .base import EdgeCase, Explorer, View, check_finite, figure_png

__all__ = ["EdgeCase", "Explorer", "View", "check_finite", "figure_png"]
