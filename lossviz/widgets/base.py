"""Controls wired to a pure render function, the way every lossviz explorer is built.

``render(**values) -> View`` must be pure (data in, figure and text out). :class:`Explorer` calls it
on every control change and writes the result straight into ``Output.outputs`` (not ``with out:``),
so the stored notebook output passes strict nbval and a test can drive it without a kernel. A render
that raises :class:`EdgeCase` shows its explanation; any other error is shown as a short message, never
a traceback.
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import ipywidgets as W
from matplotlib.figure import Figure

from .. import checks

__all__ = ["View", "EdgeCase", "Explorer", "figure_png", "check_finite", "parse_list"]


class EdgeCase(Exception):
    """Raised by a render function to explain a control setting that has no meaningful picture."""


@dataclass
class View:
    """What one render produced: an optional figure, and text lines shown under it."""

    figure: Figure | None = None
    text: str = ""
    data: dict = field(default_factory=dict)  # numbers behind the picture, for tests

    def outputs(self, dpi: int = 80) -> tuple[dict, ...]:
        """nbformat ``display_data`` outputs for ``Output.outputs``."""
        outs = []
        if self.figure is not None:
            png = figure_png(self.figure, dpi=dpi)
            outs.append(
                {
                    "output_type": "display_data",
                    "data": {
                        "image/png": base64.b64encode(png).decode("ascii"),
                        "text/plain": "<figure>",
                    },
                    "metadata": {},
                }
            )
        if self.text:
            outs.append({"output_type": "stream", "name": "stdout", "text": self.text + "\n"})
        return tuple(outs)


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """PNG bytes of a figure (Agg, no global pyplot state)."""
    buf = io.BytesIO()
    # zlib level 1: a few ms per update instead of ~10, for a slightly larger image
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def check_finite(**numbers: float) -> None:
    """Raise :class:`EdgeCase` if a number meant for the learner is NaN or infinite."""
    for name, value in numbers.items():
        if not math.isfinite(float(value)):
            # the value itself (nan, inf) is not shown: it tells a learner nothing
            raise EdgeCase(
                f"{name} is not a finite number for this setting (it overflows or is 0/0); "
                "try smaller values."
            )


def parse_list(text: str, what: str, **kwargs) -> list:
    """:func:`lossviz.checks.parse_list` for a text box: its message shown as an :class:`EdgeCase`."""
    try:
        return checks.parse_list(text, what, **kwargs)
    except ValueError as err:
        raise EdgeCase(str(err)) from None


class Explorer:
    """``Explorer(render, controls)``: display it; moving a control re-renders into one Output.

    ``controls`` maps render's keyword names to ipywidgets controls. ``layout`` (optional) arranges
    the controls; by default they stand in a row-wrapping box above the output.
    """

    def __init__(
        self,
        render: Callable[..., View],
        controls: Mapping[str, W.ValueWidget],
        *,
        layout: W.Widget | None = None,
        height: str = "420px",
        dpi: int = 80,
    ) -> None:
        self.render = render
        self.controls = dict(controls)
        self.dpi = dpi
        self.out = W.Output(layout=W.Layout(min_height=height))
        self.status = W.HTML()
        self.last_view: View | None = None
        self.last_seconds = 0.0
        box = layout or W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
        self.ui = W.VBox([box, self.out, self.status])
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    def values(self) -> dict:
        """The current value of every control, by render keyword."""
        return {name: c.value for name, c in self.controls.items()}

    def update(self, change: object = None) -> View:
        """Render the current values into the output; explain instead of failing."""
        start = time.perf_counter()
        try:
            view = self.render(**self.values())
        except EdgeCase as case:
            view = View(text=f"Nothing to draw here: {case}")
        except (ValueError, TypeError) as err:
            view = View(text=f"This setting is not valid: {err}")
        except Exception as err:  # a learner never sees a traceback
            view = View(text=f"Something went wrong ({type(err).__name__}): {err}")
        self.out.outputs = view.outputs(self.dpi)
        # no figure.clear(): it rebuilds every axes (~15% of an update) for a figure freed anyway
        self.last_view = view
        self.last_seconds = time.perf_counter() - start
        return view

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)
