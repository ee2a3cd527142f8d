"""The preference explorer, driven without a kernel, edge cases included."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossviz import preference
from lossviz.widgets.base import EdgeCase
from lossviz.widgets.preference import preference_explorer, render_preference


def test_default_is_the_first_dpo_step():
    ex = preference_explorer()
    view = ex.last_view
    assert view.data["loss"] == pytest.approx(math.log(2))
    # beta * sigma(0) / B = 0.1 / 2 / 2 per token: totals grow with length (4 and 40 tokens)
    assert view.data["chosen_total"] == [pytest.approx(0.1), pytest.approx(1.0)]
    assert view.data["rejected_total"] == [pytest.approx(-1.0), pytest.approx(-0.1)]
    assert "green" in view.text and view.outputs()[0]["data"]["image/png"]


def test_every_loss_and_simpo_equal_totals():
    ex = preference_explorer()
    for loss in preference.LOSSES:
        ex.controls["loss"].value = loss
        assert ex.last_view.figure is not None, ex.last_view.text
    ex.controls["beta"].value = 2.0
    ex.controls["loss"].value = "simpo"
    view = ex.last_view
    assert view.data["chosen_total"][0] == pytest.approx(view.data["chosen_total"][1])
    assert view.data["chosen_total"][0] == pytest.approx(-view.data["rejected_total"][0])


def test_ipo_past_its_target_pulls_chosen_down():
    view = render_preference("3", "3", "ipo", beta=0.5, chosen_shift=1.0, rejected_shift=-1.0)
    # h = 2 > 1 / (2 beta) = 1: the chosen total is negative
    assert view.data["chosen_total"][0] < 0 and "past its target" in view.text


def test_dpo_saturates_on_long_pairs_not_simpo():
    short = render_preference("10", "10", "dpo", beta=0.1, chosen_shift=0.1, rejected_shift=-0.1)
    long = render_preference("100", "100", "dpo", beta=0.1, chosen_shift=0.1, rejected_shift=-0.1)
    per_short = short.data["chosen_total"][0] / 10
    per_long = long.data["chosen_total"][0] / 100
    assert per_long < 0.3 * per_short  # sigma(-2) vs sigma(-0.2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(chosen_lengths="3, 4", rejected_lengths="3"), "one of each per pair"),
        (dict(chosen_lengths="0", rejected_lengths="3"), "at least one token"),
        (dict(chosen_lengths="x", rejected_lengths="3"), "comma-separated integers"),
        (dict(chosen_lengths="", rejected_lengths=""), "at least one"),
        (dict(chosen_lengths="3," * 7, rejected_lengths="3," * 7), "at most 6 pairs"),
        (dict(chosen_lengths="600", rejected_lengths="3"), "at or below"),
        (dict(chosen_lengths="3", rejected_lengths="3", beta=0.0), "beta must be above 0"),
        (dict(chosen_lengths="3", rejected_lengths="3", gamma=float("nan")), "not a finite"),
        (dict(chosen_lengths="3", rejected_lengths="3", loss="kto"), "pick one of"),
    ],
)
def test_edge_cases_explain_instead_of_failing(kwargs, message):
    args = dict(loss="dpo") | kwargs
    with pytest.raises(EdgeCase, match=message):
        render_preference(**args)


def test_explorer_shows_edge_cases_as_text_and_recovers():
    ex = preference_explorer()
    ex.controls["chosen_lengths"].value = "3, 4, 5"
    assert ex.last_view.text.startswith("Nothing to draw here") and ex.last_view.figure is None
    ex.controls["rejected_lengths"].value = "1, 2, 3"
    assert ex.last_view.figure is not None
    assert "nan" not in ex.last_view.text.lower()
    ex.controls["chosen_shift"].value = 1.0
    ex.controls["rejected_shift"].value = -1.0
    ex.controls["beta"].value = 10.0
    assert "nan" not in ex.last_view.text.lower() and "inf" not in ex.last_view.text.lower()


def test_notebook_13_suggestions():
    """The 'what to try' of notebook 13, each as the reader would set it."""
    ex = preference_explorer(chosen_lengths="4, 40", rejected_lengths="4, 40")
    ex.controls["chosen_shift"].value = 0.2
    ex.controls["rejected_shift"].value = -0.2
    view = ex.last_view
    per_token = [t / n for t, n in zip(view.data["chosen_total"], (4, 40), strict=True)]
    # z = 0.1 * 0.2 * (4 + 4) = 0.16 vs 1.6: sigma(-1.6) / sigma(-0.16) = 0.37
    assert per_token[1] / per_token[0] == pytest.approx(
        (1 / (1 + math.exp(1.6))) / (1 / (1 + math.exp(0.16)))
    )
    ex.controls["loss"].value = "ipo"
    ex.controls["beta"].value = 1.0
    ex.controls["chosen_shift"].value = 0.5
    ex.controls["rejected_shift"].value = -0.5
    assert all(t < 0 for t in ex.last_view.data["chosen_total"])
    assert "past its target" in ex.last_view.text


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 512), min_size=1, max_size=6),
    st.sampled_from(preference.LOSSES),
    st.floats(0.01, 10.0),
    st.floats(0.0, 3.0),
    st.floats(-1.0, 1.0),
    st.floats(-1.0, 1.0),
)
def test_every_slider_setting_draws_finite_numbers(lengths, loss, beta, gamma, d_c, d_r):
    chosen, rejected = ", ".join(map(str, lengths)), ", ".join(map(str, lengths[::-1]))
    view = render_preference(chosen, rejected, loss, beta, gamma, d_c, d_r)
    numbers = [view.data["loss"], *view.data["chosen_total"], *view.data["rejected_total"]]
    assert all(math.isfinite(v) for v in numbers)
    assert "nan" not in view.text.lower() and "inf" not in view.text.lower()
