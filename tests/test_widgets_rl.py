"""The RL aggregation explorer, driven without a kernel, edge cases included."""

import pytest

from lossviz import rl
from lossviz.widgets.base import EdgeCase
from lossviz.widgets.rl import parse_numbers, render_rl, rl_explorer


def test_default_group_and_every_mode():
    ex = rl_explorer()
    for mode in rl.mode_names():
        ex.controls["mode"].value = mode
        assert rl.MODES[mode].name in ex.last_view.text
        assert len(ex.last_view.data["per_token"]) == 4
    ex.controls["mode"].value = "trl:grpo"
    per_token = ex.last_view.data["per_token"]
    assert per_token[1] == pytest.approx(per_token[0] / 10)  # 200 vs 20 tokens


@pytest.mark.parametrize(
    "lengths,advantages,mode,max_length,message",
    [
        ("10, 20", "1", "trl:grpo", 1024, "2 lengths but 1 advantages"),
        ("ten", "1", "trl:grpo", 1024, "must be comma-separated integers"),
        ("", "", "trl:grpo", 1024, "at least one"),
        ("0, 5", "1, -1", "trl:grpo", 1024, "at least one token"),
        ("10, 600", "1, -1", "trl:dr_grpo", 512, "shorter than the longest"),
        ("5", "nan", "trl:grpo", 1024, "finite numbers"),
        (", ".join(["3"] * 17), ", ".join(["1"] * 17), "trl:grpo", 1024, "at most 16"),
        ("5000", "1", "trl:grpo", 1024, "at or below"),
    ],
)
def test_edge_cases_explain_instead_of_failing(lengths, advantages, mode, max_length, message):
    with pytest.raises(EdgeCase, match=message):
        render_rl(lengths, advantages, mode, max_length)
    ex = rl_explorer(lengths="10, 20", advantages="1, -1")
    ex.controls["max_length"].value = max_length
    ex.controls["mode"].value = mode
    ex.controls["lengths"].value = lengths
    ex.controls["advantages"].value = advantages
    assert ex.last_view.text.startswith("Nothing to draw here")


def test_single_response_all_equal_and_zero_advantages():
    one = render_rl("7", "1", "verl:seq-mean-token-sum-norm", 7)
    assert one.data["total"] == [pytest.approx(-1.0)]
    zero = render_rl("3, 9", "0, 0", "trl:grpo")
    assert zero.data["total"] == [0.0, 0.0] and "no response is pushed" in zero.text
    same = render_rl("5, 5, 5", "1, 0, -1", "trl:bnpo")
    assert same.data["per_token"][0] == pytest.approx(-same.data["per_token"][2])


def test_parse_numbers():
    assert parse_numbers("1; 2 ,3", int, "length") == [1, 2, 3]
    assert parse_numbers("-0.5", float, "advantage") == [-0.5]


def test_figure_bars_are_the_per_token_weights():
    view = render_rl("20, 200, 20, 200", "1, 1, -1, -1", "trl:grpo")
    (bars,) = [a for a in view.figure.axes[0].collections if a.get_gid() == "bars"]
    heights = [p.vertices[:, 1].max() + p.vertices[:, 1].min() for p in bars.get_paths()]
    assert heights == pytest.approx([-v for v in view.data["per_token"]])  # the push -dL/dlog π
    assert "green and up" in view.text and view.outputs()[0]["data"]["image/png"]


def test_explorer_redraws_the_same_picture_as_the_pure_render():
    ex = rl_explorer()
    steps = [
        ("mode", "trl:dr_grpo"),
        ("lengths", "5, 50"),
        ("advantages", "0, 0"),  # every bar 0, then back to a signed scale
        ("advantages", "-1, 0.5"),
        ("lengths", "ten"),  # an edge case in between keeps the cached pictures intact
        ("lengths", "5, 50, 500, 5"),
        ("advantages", "1, -1, 0.5, -0.5"),
        ("mode", "verl:token-mean"),
    ]
    drawn = 0
    for control, value in steps:
        ex.controls[control].value = value
        try:
            pure = render_rl(**ex.values())
        except EdgeCase as case:
            assert ex.last_view.text == f"Nothing to draw here: {case}"
            continue
        assert ex.last_view.text == pure.text
        assert ex.last_view.outputs() == pure.outputs()  # the same PNG, byte for byte
        drawn += 1
    assert drawn == 5
