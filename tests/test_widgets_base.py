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


def test_draw_ahead_renders_the_next_slider_steps_in_a_running_event_loop():
    import asyncio

    import ipywidgets as W

    from lossviz.widgets.base import Explorer, View

    seen = []

    def render(n, m):
        seen.append((n, m))
        return View(text=f"{n} {m}")

    controls = {"n": W.IntSlider(2, 0, 3), "m": W.IntSlider(0, 0, 5)}
    ex = Explorer(render, controls, draw_ahead=True)
    assert seen == [(2, 0)]  # no event loop while building: nothing drawn ahead
    ex.controls["n"].value = 1
    assert seen == [(2, 0), (1, 0)]

    async def move_and_idle():
        ex.controls["n"].value = 2  # moved up: 3 first, then back to 1, then m up
        shown = ex.out.outputs
        for _ in range(20):
            await asyncio.sleep(0.01)
        return shown

    shown = asyncio.run(move_and_idle())
    # 3 first; 1 was shown already; m = -1 is out of range
    assert seen[2] == (2, 0) and seen[3:] == [(3, 0), (2, 1)]
    assert ex.out.outputs == shown and ex.last_view.text == "2 0"  # nothing drawn ahead is shown
    assert ex.neighbours()[:2] == [{"n": 3, "m": 0}, {"n": 1, "m": 0}]
