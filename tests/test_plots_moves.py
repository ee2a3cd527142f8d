"""The pieces that let an explorer move a kept picture cheaply: setters, the fixed colour bar,
an axis drawn without its label, and the PNG written straight from the Agg buffer."""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from lossviz.plots.moves import AxisTicks, FixedScaleBar, axis_layers, set_clim, set_xlim
from lossviz.plots.reductions import WEIGHT_CMAP
from lossviz.widgets.base import Canvas, rgba_png


def test_setters_leave_an_unchanged_value_alone():
    fig = Figure()
    ax = fig.add_subplot()
    image = ax.imshow(np.zeros((2, 2)))
    calls = []
    image.callbacks.connect("changed", lambda *_: calls.append("scale"))
    ax.callbacks.connect("xlim_changed", lambda *_: calls.append("xlim"))
    set_clim(image, 0.0, 2.0)
    set_xlim(ax, -1.0, 3.0)
    assert calls == ["scale", "xlim"] and image.get_clim() == (0.0, 2.0)
    set_clim(image, 0.0, 2.0)  # the same values: no callback, no colour bar rebuilt
    set_xlim(ax, -1.0, 3.0)
    assert calls == ["scale", "xlim"]


def test_the_fixed_scale_bar_labels_its_ends_and_keeps_its_ramp():
    fig = Figure()
    ax = fig.add_axes((0.1, 0.1, 0.6, 0.8))
    bar = FixedScaleBar(fig, fig.add_axes((0.8, 0.1, 0.05, 0.8)), WEIGHT_CMAP, "weight")
    ramp = bar.colorbar.solids
    bar.show(0.025)
    assert [t.get_text() for t in bar.ax.get_yticklabels()] == ["0", "", "0.025"]
    assert bar.colorbar.mappable.get_clim() == (0.0, 1.0) and bar.colorbar.solids is ramp
    assert bar.ax.get_ylabel() == "weight" and bar.top == 0.025
    assert ax.get_ylabel() == ""


def test_an_axis_layer_draws_its_ticks_and_its_label_apart():
    fig = Figure(figsize=(3, 2), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.3, 0.3, 0.6, 0.6))
    ax.set_xlim(0, 10)
    ax.set_xlabel("tokens")
    canvas.draw()
    renderer = canvas.get_renderer()
    layers = axis_layers("x", ax.xaxis, ax.get_xlim())
    assert [(name, key) for name, key, _ in layers] == [
        ("x.ticks", (0.0, 10.0)),
        ("x.label", "tokens"),
    ]
    ticks = layers[0][2][0]
    assert isinstance(ticks, AxisTicks)
    shown = []  # whether the label was visible when the axis came to draw it
    ax.xaxis.label.draw = lambda r: shown.append(ax.xaxis.label.get_visible())
    ticks.draw(renderer)
    assert shown == [False] and ax.xaxis.label.get_visible()  # hidden for the ticks only


def test_the_png_is_the_buffer_pixel_for_pixel():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    got = np.asarray(Image.open(io.BytesIO(rgba_png(rgba))).convert("RGBA"))
    assert got.shape == (7, 5, 4) and (got == rgba).all()


def test_a_layer_drawn_once_is_pasted_where_it_was_drawn():
    class Picture:
        def __init__(self):
            self.fig = Figure(figsize=(3, 2), dpi=80)
            self.ax = self.fig.add_axes((0.25, 0.25, 0.7, 0.6))
            self.title = self.ax.set_title("", y=1.0)
            (self.line,) = self.ax.plot([0, 1], [0, 1])
            self.dynamic = [self.line]
            self.drawn = 0

        def static_key(self):
            return ()

        def layers(self):
            return [("title", self.title.get_text(), [self.title])]

    canvas, picture = Canvas(), Picture()
    frames = {}
    for text in ("first", "second", "first"):
        picture.title.set_text(text)
        frames.setdefault(text, []).append(canvas.png(picture))
    # the first title comes back from its sprite, pixel for pixel what was drawn
    assert frames["first"][0] == frames["first"][1] != frames["second"][0]
    assert len(canvas._sprites) == 2
