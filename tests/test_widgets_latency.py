"""The latency helper times real updates of any explorer and restores its controls."""

import ipywidgets as W
import pytest

from lossviz.widgets import Explorer, View
from lossviz.widgets.latency import default_sweeps, summarize, time_updates


def _explorer(calls):
    def render(n, mode):
        calls.append((n, mode))
        return View(text=f"{n} {mode}")

    controls = {"n": W.IntSlider(2, 1, 9), "mode": W.Dropdown(options=["a", "b", "c"], value="a")}
    return Explorer(render, controls)


def test_every_changed_value_is_one_timed_update_and_controls_are_restored():
    calls = []
    explorer = _explorer(calls)
    calls.clear()
    times = time_updates(explorer, [("n", [2, 5, 9]), ("mode", ["b", "c"])], repeats=2)
    assert len(times) == 2 * (2 + 2)  # the value equal to the current one fires nothing
    assert (5, "a") in calls and (2, "c") in calls
    assert explorer.values() == {"n": 2, "mode": "a"}


def test_default_sweeps_cover_options_and_slider_range():
    sweeps = dict(default_sweeps(_explorer([]), max_values=3))
    assert sweeps["mode"] == ["a", "b", "c"]
    assert sweeps["n"][0] == 1 and len(sweeps["n"]) == 3


def test_a_broken_setting_is_reported():
    def render(n):
        raise ValueError("boom")

    explorer = Explorer(render, {"n": W.IntSlider(1, 1, 3)})
    with pytest.raises(RuntimeError, match="broke the explorer"):
        time_updates(explorer, [("n", [2])])


def test_summary_in_milliseconds():
    s = summarize([0.01] * 19 + [0.5])
    assert s == {"updates": 20, "median_ms": 10.0, "p95_ms": 10.0, "max_ms": 500.0}


def test_p95_and_reference():
    from lossviz.widgets.latency import p95, reference_seconds

    assert p95([0.001 * i for i in range(1, 101)]) == 0.095
    assert 0 < reference_seconds(n=2) < 10
