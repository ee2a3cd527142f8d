"""Controls wired to a pure render function, the way every lossviz explorer is built.

``render(**values) -> View`` must be pure (data in, figure and text out). :class:`Explorer` calls it
on every control change and writes the result straight into ``Output.outputs`` (not ``with out:``),
so the stored notebook output passes strict nbval and a test can drive it without a kernel. A render
that raises :class:`EdgeCase` shows its explanation; any other error is shown as a short message, never
a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

import ipywidgets as W
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import checks

__all__ = [
    "View",
    "EdgeCase",
    "Explorer",
    "Canvas",
    "StaticVBox",
    "figure_png",
    "rgba_png",
    "check_finite",
    "parse_list",
]


class EdgeCase(Exception):
    """Raised by a render function to explain a control setting that has no meaningful picture."""


@dataclass
class View:
    """What one render produced: an optional figure, and text lines shown under it."""

    figure: Figure | None = None
    text: str = ""
    data: dict = field(default_factory=dict)  # numbers behind the picture, for tests
    png: bytes | None = None  # the figure already rendered (by a Canvas); else savefig at dpi

    def outputs(self, dpi: int = 80) -> tuple[dict, ...]:
        """nbformat ``display_data`` outputs for ``Output.outputs``."""
        outs = []
        if self.figure is not None:
            png = self.png if self.png is not None else figure_png(self.figure, dpi=dpi)
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


def rgba_png(rgba: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an ``[H, W, 4]`` uint8 picture, as it is in the Agg buffer (8-bit RGBA).

    Rows unfiltered and zlib level 1, from the buffer with no channel copied out: about a third of
    the time Pillow's RGB encoder takes on an explorer's picture, for a file about a third larger
    (every pixel is still exact: PNG is lossless).
    """
    h, w = rgba.shape[:2]
    rows = np.empty((h, 1 + 4 * w), dtype=np.uint8)
    rows[:, 0] = 0  # filter type 0 (none) on every row
    rows[:, 1:] = rgba.reshape(h, 4 * w)
    body = zlib.compress(rows.tobytes(), level)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


class _Sprite:
    """The pixels one layer drew over the background: a rectangle, which of its pixels, their RGBA."""

    __slots__ = ("y", "x", "mask", "rgba")

    def __init__(self, drawn: np.ndarray, background: np.ndarray) -> None:
        # one 32-bit word per RGBA pixel: a quarter of the comparisons of a per-channel test
        changed = drawn.view(np.uint32)[..., 0] != background.view(np.uint32)[..., 0]
        ys, xs = np.nonzero(changed)
        if not len(ys):  # the layer drew nothing (an empty title)
            self.y = self.x = 0
            self.mask = np.zeros((0, 0, 1), dtype=bool)
            self.rgba = np.zeros((0, 0, 4), dtype=np.uint8)
            return
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        self.y, self.x = int(y0), int(x0)
        self.mask = changed[y0:y1, x0:x1, None]
        self.rgba = drawn[y0:y1, x0:x1].copy()

    def paste(self, frame: np.ndarray) -> None:
        h, w = self.mask.shape[:2]
        np.copyto(frame[self.y : self.y + h, self.x : self.x + w], self.rgba, where=self.mask)


class Canvas:
    """One explorer's caches: its computed results, and each layout's picture drawn once.

    ``canvas.memo(fn, *args)`` returns ``fn(*args)``, computed once per explorer for those
    arguments (the last ``16 * maxsize`` kept); a result is shared with nothing outside this
    explorer, so another explorer can never see it change. ``canvas.picture(layout, build)``
    returns the picture built by ``build()`` for this layout (kept for up to ``maxsize``
    layouts).

    A picture is any object with ``fig`` (a Figure), ``dynamic`` (the artists every update
    changes) and ``static_key()`` (changes whenever anything else in the figure changed that is
    not in a layer); optionally ``layers()``: ``[(name, key, artists)]``, parts that change now and
    then (an axis whose range moved, a title), each drawn once per ``key``. :meth:`png` draws the
    static parts once per static key and keeps those pixels; a layer is drawn alone on them once
    per key and kept as the pixels it changed (a sprite). Per update it restores the static
    pixels, pastes each layer's sprite, and draws only the dynamic artists on top (blitting).
    Layers must not draw on the same pixels as each other (the tests compare every explorer's
    pictures with a full draw). Each explorer owns its own Canvas.
    """

    def __init__(self, dpi: int = 80, maxsize: int = 8) -> None:
        self.dpi, self.maxsize = dpi, maxsize
        self._pictures: OrderedDict[Hashable, object] = OrderedDict()
        # (id of picture, static key) -> background pixels; a slider moved back finds its own
        self._backgrounds: OrderedDict[tuple[int, Hashable], np.ndarray] = OrderedDict()
        # (id of picture, static key, layer name, layer key) -> that layer's sprite
        self._sprites: OrderedDict[tuple, _Sprite] = OrderedDict()
        self._results: OrderedDict[tuple, object] = OrderedDict()

    def memo(self, fn: Callable[..., object], *args: Hashable) -> object:
        """``fn(*args)``, remembered by this explorer (``args`` must be hashable)."""
        key = (fn, *args)
        if key in self._results:
            self._results.move_to_end(key)
            return self._results[key]
        result = fn(*args)
        if len(self._results) >= 16 * self.maxsize:
            self._results.popitem(last=False)
        self._results[key] = result
        return result

    def picture(self, layout: Hashable, build: Callable[[], object]):
        """The cached picture for ``layout``, built by ``build()`` the first time."""
        if layout in self._pictures:
            self._pictures.move_to_end(layout)
            return self._pictures[layout]
        if len(self._pictures) >= self.maxsize:
            _, old = self._pictures.popitem(last=False)
            for cache in (self._backgrounds, self._sprites):
                for key in [k for k in cache if k[0] == id(old)]:
                    del cache[key]
        self._pictures[layout] = picture = build()
        return picture

    @staticmethod
    def _remember(cache: OrderedDict, key: tuple, value: object, size: int) -> None:
        if len(cache) >= size:
            cache.popitem(last=False)
        cache[key] = value

    def frame(self, picture) -> np.ndarray:
        """``picture.fig`` as it is now, drawn into its Agg buffer: ``[H, W, 4]`` uint8 (a view)."""
        fig = picture.fig
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        if fig.dpi != self.dpi:
            fig.set_dpi(self.dpi)
        layers = list(picture.layers()) if hasattr(picture, "layers") else []
        key = (id(picture), picture.static_key())
        background = self._backgrounds.get(key)
        if background is None:
            # left out of the background (and drawn as usual by savefig elsewhere)
            apart = [*picture.dynamic, *(a for _, _, artists in layers for a in artists)]
            for artist in apart:
                artist.set_animated(True)
            canvas.draw()
            for artist in apart:
                artist.set_animated(False)
            background = np.asarray(canvas.buffer_rgba()).copy()
            self._remember(self._backgrounds, key, background, 4 * self.maxsize)
        self._backgrounds.move_to_end(key)
        frame = np.asarray(canvas.buffer_rgba())
        sprites = []
        for name, layer_key, artists in layers:
            sprite_key = (*key, name, layer_key)
            sprite = self._sprites.get(sprite_key)
            if sprite is None:  # drawn alone on the background, once per key
                frame[...] = background
                for artist in artists:
                    fig.draw_artist(artist)
                sprite = _Sprite(frame, background)
                self._remember(self._sprites, sprite_key, sprite, 16 * self.maxsize)
            self._sprites.move_to_end(sprite_key)
            sprites.append(sprite)
        frame[...] = background
        for sprite in sprites:
            sprite.paste(frame)
        for artist in picture.dynamic:
            fig.draw_artist(artist)
        return frame

    def png(self, picture) -> bytes:
        """PNG bytes of ``picture.fig`` as it is now: static pixels and layers reused, dynamic
        artists drawn."""
        return rgba_png(self.frame(picture))


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

    ``draw_ahead=True`` (for a render that keeps its work in a :class:`Canvas`): in a live kernel,
    after each update the explorer renders, without showing them, the settings one slider step
    away (the last-moved slider onward first, then back, then the other sliders), one per turn of
    the kernel's event loop, so that the step a learner takes next is already computed and drawn.
    A control change that arrives meanwhile waits for at most one such render and cancels the rest.
    ``draw_ahead`` may also be a predicate on those settings: only the ones it accepts are drawn
    ahead (an explorer leaves out a setting whose render is slow, such as a new figure size).
    """

    def __init__(
        self,
        render: Callable[..., View],
        controls: Mapping[str, W.ValueWidget],
        *,
        layout: W.Widget | None = None,
        height: str = "420px",
        dpi: int = 80,
        draw_ahead: bool | Callable[[dict], bool] = False,
    ) -> None:
        self.render = render
        self.controls = dict(controls)
        self.dpi = dpi
        self.draw_ahead = draw_ahead
        self._ahead: list[dict] = []
        self._ahead_handle = None
        self._drawn: set = set()  # settings rendered (shown or ahead): not drawn ahead again
        self.out = W.Output(layout=W.Layout(min_height=height))
        self.status = W.HTML()
        self.last_view: View | None = None
        self.last_seconds = 0.0
        box = layout or W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
        self.ui = W.VBox([box, self.out, self.status])
        for control in self.controls.values():
            control.observe(self.update, names="value")
        opening = self.update()
        self._static_png: bytes | None = None
        if opening.figure is not None:
            self._static_png = opening.png or figure_png(opening.figure, dpi=self.dpi)

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
        if self.draw_ahead:
            self._remember_drawn(self.values())
            self._plan_ahead(change)
        return view

    def _remember_drawn(self, values: dict) -> bool:
        """Note ``values`` as rendered; ``False`` if they were already (bounded, like the caches)."""
        key = tuple(sorted(values.items()))
        if key in self._drawn:
            return False
        if len(self._drawn) >= 256:
            self._drawn.clear()
        self._drawn.add(key)
        return True

    def neighbours(self, change: object = None, limit: int = 6) -> list[dict]:
        """The settings one slider step from now: the moved slider onward, then back, then the
        other visible sliders up and down (at most ``limit``)."""
        now = self.values()
        moved, sign = None, 1
        if isinstance(change, dict) and change.get("owner") is not None:
            moved = next((n for n, c in self.controls.items() if c is change["owner"]), None)
            try:
                sign = 1 if change["new"] >= change["old"] else -1
            except TypeError:
                moved = None
        sliders = [
            n
            for n, c in self.controls.items()
            if isinstance(c, W.IntSlider | W.FloatSlider) and c.layout.display != "none"
        ]
        order = ([(moved, sign), (moved, -sign)] if moved in sliders else []) + [
            (n, d) for n in sliders if n != moved for d in (1, -1)
        ]
        out = []
        for name, d in order:
            c = self.controls[name]
            value = c.value + d * c.step
            values = {**now, name: value}
            if c.min <= value <= c.max and (
                not callable(self.draw_ahead) or self.draw_ahead(values)
            ):
                out.append(values)
        return out[:limit]

    def _plan_ahead(self, change: object) -> None:
        """Queue :meth:`neighbours` for :meth:`_draw_one_ahead`, in a live kernel's event loop only."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here (a test, a script): nothing is drawn ahead
            return
        if self._ahead_handle is not None:
            self._ahead_handle.cancel()
        self._ahead = self.neighbours(change)
        # after the frame has gone out to the browser
        self._ahead_handle = loop.call_later(0.02, self._draw_one_ahead)

    def _draw_one_ahead(self) -> None:
        """Render the next queued setting (filling the caches, showing nothing), then yield."""
        self._ahead_handle = None
        while self._ahead and not self._remember_drawn(self._ahead[0]):
            self._ahead.pop(0)  # already drawn: its pixels and numbers are in the caches
        if not self._ahead:
            return
        values = self._ahead.pop(0)
        try:
            self.render_ahead(values)
        except Exception:  # noqa: BLE001 - a setting that fails shows its message when chosen
            pass
        if self._ahead:
            self._ahead_handle = asyncio.get_running_loop().call_soon(self._draw_one_ahead)

    def render_ahead(self, values: dict) -> None:
        """Compute and draw ``values`` into the caches without showing them (see ``draw_ahead``)."""
        self.render(**values)

    def static_png(self) -> bytes | None:
        """The PNG of the picture the explorer opened with (its default state), or ``None``."""
        return self._static_png

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, plus its opening picture as ``image/png`` for a reader without a kernel.

        JupyterLab and Notebook render the richest type they can (the widget view), so a live lab
        shows the explorer once; GitHub, nbviewer and static exports cannot render a widget view
        and show the picture instead.
        """
        bundle = self.ui._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        if self._static_png is not None:
            data = {**data, "image/png": base64.b64encode(self._static_png).decode("ascii")}
            data["text/plain"] = "Interactive explorer (run the notebook to move its controls)"
        return (data, metadata) if isinstance(bundle, tuple) else data


class StaticVBox(W.VBox):
    """A ``VBox`` that also carries its opening state as HTML, for a reader without a kernel.

    The same rule as :meth:`Explorer._repr_mimebundle_`: a live lab renders the widget view (the
    richer type), GitHub, nbviewer and static exports render ``static_html``.
    """

    def __init__(self, children, *, static_html: str, **kwargs) -> None:
        super().__init__(children, **kwargs)
        self._static_html = static_html

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = {**data, "text/html": self._static_html}
        return (data, metadata) if isinstance(bundle, tuple) else data
