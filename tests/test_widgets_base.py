"""lossviz.widgets.base: controls drive a pure render; edge cases are explained, never raised."""

import ipywidgets as W
from matplotlib.figure import Figure

from lossviz.widgets import EdgeCase, Explorer, View


def render(n, fail):
    if fail == "edge":
        raise EdgeCase("no samples to weigh")
    if fail == "bug":
        raise ZeroDivisionError("division by zero")
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().bar(range(n), [1] * n)
    return View(fig, f"n = {n}", {"n": n})


def make():
    return Explorer(
        render,
        {
            "n": W.IntSlider(value=2, min=1, max=5),
            "fail": W.Dropdown(options=["no", "edge", "bug"], value="no"),
        },
    )


def test_initial_render_and_control_changes():
    ex = make()
    assert ex.last_view.data == {"n": 2}
    assert ex.out.outputs[0]["data"]["image/png"]
    ex.controls["n"].value = 4
    assert ex.last_view.data == {"n": 4}
    assert ex.out.outputs[-1]["text"] == "n = 4\n"


def test_edge_cases_and_errors_become_text():
    ex = make()
    ex.controls["fail"].value = "edge"
    assert "no samples to weigh" in ex.out.outputs[0]["text"]
    ex.controls["fail"].value = "bug"
    text = ex.out.outputs[0]["text"]
    assert "ZeroDivisionError" in text and "Traceback" not in text
