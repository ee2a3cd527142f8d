"""The precision explorer, driven without a kernel."""

import io
import math

import numpy as np
from PIL import Image

from lossviz import precision as P
from lossviz.widgets.base import figure_png
from lossviz.widgets.precision import precision_explorer, render_precision


def _pixels(fig) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(figure_png(fig, dpi=80))))


def test_slider_snaps_to_the_table_and_reports_the_numbers():
    ex = precision_explorer()
    for value in (1, 37, 10_000, 1e6, P.MAX_TOKENS):
        ex.controls["num_tokens"].value = value
        data = ex.last_view.data
        assert data["n"] in P.curves().ns
        assert abs(math.log10(data["n"]) - math.log10(value)) < 0.1
        assert "Something went wrong" not in ex.last_view.text
        assert len(ex.out.outputs) == 2  # figure + text


def test_every_dtype_and_reduction_renders():
    ex = precision_explorer()
    for dtype in P.DTYPES:
        for reduction in P.PRECISION_REDUCTIONS:
            ex.controls["dtype"].value = dtype
            ex.controls["reduction"].value = reduction
            assert dtype in ex.last_view.text
            assert ex.last_view.text == render_precision(10_000, dtype, reduction).text


def test_the_explorers_cached_figure_is_the_pure_picture():
    ex = precision_explorer()
    for num_tokens, dtype, reduction in [
        (1, "float16", "sum"),
        (10_000, "bfloat16", "token_mean"),
        (P.MAX_TOKENS, "float16", "sum"),  # overflow crosses
        (300, "float32", "sum"),  # back to a cached background
    ]:
        ex.controls["dtype"].value = dtype
        ex.controls["reduction"].value = reduction
        ex.controls["num_tokens"].value = num_tokens
        fast = _pixels(ex.last_view.figure)
        pure = _pixels(render_precision(num_tokens, dtype, reduction).figure)
        assert fast.shape == pure.shape
        # the same picture: at most the marker's end pixels may round differently
        assert (fast != pure).any(axis=-1).sum() <= 4
    ex.controls["num_tokens"].value = 10  # the marker moved: the picture changed
    assert (_pixels(ex.last_view.figure) != fast).any(axis=-1).sum() > 50


def test_overflow_and_stall_are_explained():
    view = render_precision(P.MAX_TOKENS, "float16", "sum")
    assert "inf (overflow)" in view.text
    assert "overflows to inf from" in view.text and "stops moving" in view.text
    assert view.data["errors"][("float16", "torch")] == math.inf
    assert "overflows" not in render_precision(100, "float32", "sum").text
    assert "cpu" in render_precision(1, "bfloat16", "token_mean", "cpu").text
