"""The precision explorer, driven without a kernel."""

import math

from lossviz import precision as P
from lossviz.widgets.precision import precision_explorer, render_precision


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
        for reduction in P.REDUCTIONS:
            ex.controls["dtype"].value = dtype
            ex.controls["reduction"].value = reduction
            assert not ex.last_view.figure.axes  # cleared after writing the output
            assert dtype in ex.last_view.text


def test_overflow_and_stall_are_explained():
    view = render_precision(P.MAX_TOKENS, "float16", "sum")
    assert "inf (overflow)" in view.text
    assert "overflows to inf from" in view.text and "stops moving" in view.text
    assert view.data["errors"][("float16", "torch")] == math.inf
    assert "overflows" not in render_precision(100, "float32", "sum").text
    assert "cpu" in render_precision(1, "bfloat16", "token_mean", "cpu").text
