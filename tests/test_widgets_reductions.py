"""The reduction explorer, driven without a kernel: set controls, check what was rendered."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz as lv
from lossviz.widgets import EdgeCase
from lossviz.widgets.reductions import (
    BATCH_LAYOUTS,
    MAX_LENGTH,
    MAX_SAMPLES,
    reduction_explorer,
    render_reduction,
)


@pytest.fixture(scope="module")
def explorer():
    return reduction_explorer()


def _lengths(ns):
    return {f"length_{b}": n for b, n in enumerate(ns)}


def test_every_registered_reduction_is_a_choice(explorer):
    assert list(explorer.controls["reduction"].options) == list(lv.REDUCTIONS)


def test_device_choices_come_from_the_device_helper(explorer):
    device = explorer.controls["device"]
    assert list(device.options) == lv.devices.available_devices()
    if lv.devices.available_devices() == ["cpu"]:
        assert device.disabled and "CPU only" in device.description
        assert "Only the CPU" in explorer.ui.children[0].children[1].children[-1].value


def test_moving_a_length_slider_rerenders(explorer):
    explorer.controls["num_samples"].value = 2
    explorer.controls["reduction"].value = "token_mean"
    explorer.controls["length_0"].value = 4
    explorer.controls["length_1"].value = 12
    view = explorer.last_view
    assert view.data["lengths"] == [4, 12]
    assert view.data["shares"].tolist() == pytest.approx([0.25, 0.75])
    assert len(explorer.out.outputs) == 2 and "image/png" in explorer.out.outputs[0]["data"]
    assert "token_mean" in view.text and "<- chosen" in view.text


def test_hidden_length_sliders_follow_the_sample_count(explorer):
    explorer.controls["num_samples"].value = 3
    shown = [explorer.controls[f"length_{b}"].layout.display for b in range(MAX_SAMPLES)]
    assert shown == [None] * 3 + ["none"] * (MAX_SAMPLES - 3)


@pytest.mark.parametrize("padding", BATCH_LAYOUTS)
def test_layouts_give_the_same_loss_where_the_reduction_ignores_padding(padding):
    ref = render_reduction(4, "right", **_lengths([5, 1, 9, 3])).data["losses"]
    got = render_reduction(4, padding, 8, **_lengths([5, 1, 9, 3])).data["losses"]
    for name in ("sum", "token_mean", "sample_mean", "seq_mean_token_sum"):
        assert got[name] == pytest.approx(ref[name], rel=1e-6)


def test_padded_mean_is_the_one_that_moves_with_padding():
    a = render_reduction(2, "right", 1, **_lengths([3, 5])).data["losses"]
    b = render_reduction(2, "right", 16, **_lengths([3, 5])).data["losses"]
    assert a["token_mean"] == pytest.approx(b["token_mean"])
    assert b["padded_mean"] == pytest.approx(a["padded_mean"] * 5 / 16)


def test_token_losses_are_laid_out_per_sample():
    right = render_reduction(2, "right", **_lengths([2, 4])).data
    left = render_reduction(2, "left", **_lengths([2, 4])).data
    assert torch.equal(right["token_losses"][0, :2], left["token_losses"][0, 2:])
    assert float(right["token_losses"][0, 2:].abs().sum()) == 0.0


@pytest.mark.parametrize(
    "case",
    [
        dict(num_samples=1, **_lengths([1])),  # one sample, one token
        dict(num_samples=MAX_SAMPLES, **_lengths([7] * MAX_SAMPLES)),  # all equal
        dict(num_samples=2, pad_to_multiple_of=16, **_lengths([1, MAX_LENGTH])),  # max padding
        dict(num_samples=MAX_SAMPLES, padding="packed", **_lengths([MAX_LENGTH] * MAX_SAMPLES)),
        dict(num_samples=1, padding="packed", pad_to_multiple_of=16, **_lengths([1])),
    ],
)
@pytest.mark.parametrize("reduction", list(lv.REDUCTIONS))
def test_edge_cases_render_finite_numbers(case, reduction):
    view = render_reduction(reduction=reduction, **case)
    assert view.figure is not None
    assert all(math.isfinite(v) for v in view.data["losses"].values())
    assert float(view.data["shares"].sum()) == pytest.approx(1.0)


def test_all_equal_lengths_make_token_and_sample_mean_agree():
    d = render_reduction(3, **_lengths([6, 6, 6])).data["losses"]
    assert d["token_mean"] == pytest.approx(d["sample_mean"])


def test_out_of_range_values_are_explained_not_raised(explorer):
    with pytest.raises(EdgeCase, match="between 1 and"):
        render_reduction(1, length_0=0)
    with pytest.raises(EdgeCase, match="samples"):
        render_reduction(MAX_SAMPLES + 1)
    explorer.controls["length_0"].value = 0  # the slider clamps what a learner can reach
    assert explorer.controls["length_0"].value == 1
    assert explorer.last_view.figure is not None


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(1, MAX_LENGTH), min_size=1, max_size=MAX_SAMPLES),
    st.sampled_from(BATCH_LAYOUTS),
    st.sampled_from([1, 4, 8, 16]),
)
def test_shares_match_the_reduction_definitions(ns, padding, multiple):
    data = render_reduction(len(ns), padding, multiple, "token_mean", **_lengths(ns)).data
    assert data["shares"].tolist() == pytest.approx([n / sum(ns) for n in ns])
    assert float(data["mask"].sum()) == sum(ns)
    assert float(data["W"].sum()) == pytest.approx(1.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_losses_on_the_gpu_match_the_cpu():
    cpu = render_reduction(4, "packed", 4, device="cpu", **_lengths([5, 1, 9, 3])).data
    gpu = render_reduction(4, "packed", 4, device="cuda:0", **_lengths([5, 1, 9, 3])).data
    assert gpu["device"] == "cuda:0"
    for name, value in cpu["losses"].items():
        assert gpu["losses"][name] == pytest.approx(value, rel=1e-5)


def test_an_unavailable_device_is_explained():
    with pytest.raises(ValueError, match="not available"):
        render_reduction(device="cuda:999")
