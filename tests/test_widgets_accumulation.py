"""The accumulation explorer, driven without a kernel."""

import math

import pytest

from lossviz.widgets.accumulation import (
    MAX_SAMPLES,
    accumulation_explorer,
    render_accumulation,
)
from lossviz.widgets.base import EdgeCase


def test_default_view_shows_full_naive_and_global_weights():
    view = render_accumulation()
    d = view.data
    assert d["lengths"] == [12, 40, 7, 300]
    assert d["naive"] == pytest.approx([0.25] * 4)
    assert d["global"] == pytest.approx(d["full batch"])
    assert max(d["ratio"]) == pytest.approx(359 / 28)
    gaps = d["gaps"]
    assert gaps["global GA (float rounding)"] < 1e-6 < 1e-2 < gaps["naive GA"]
    assert "global GA (float rounding): < 1e-6" in view.text  # a bound, not CPU digits
    assert "12.82x" in view.text


def test_moving_controls_re_renders():
    ex = accumulation_explorer()
    ex.controls["ga_steps"].value = 2
    assert len(ex.last_view.data["lengths"]) == 2
    ex.controls["world_size"].value = 2
    assert ex.last_view.data["lengths"] == [12, 40, 7, 300]
    assert "ranks 2" in ex.last_view.text
    ex.controls["normalization"].value = "sum"
    assert "sum GA" in ex.last_view.data["gaps"]
    assert ex.out.outputs and ex.out.outputs[0]["output_type"] == "display_data"


def test_every_slider_updates_on_release_only():
    ex = accumulation_explorer()
    for name in ("per_device_batch_size", "ga_steps", "world_size", "lengths"):
        assert ex.controls[name].continuous_update is False
    assert "cpu" in ex.controls["device"].options


def test_equal_lengths_make_naive_exact():
    d = render_accumulation(lengths="9", ga_steps=4, normalization="naive").data
    assert d["ratio"] == pytest.approx([1.0] * 4)
    assert d["gaps"]["naive GA"] < 1e-5


def test_one_sample_one_step_renders():
    d = render_accumulation(lengths="1", per_device_batch_size=1, ga_steps=1, world_size=1).data
    assert d["full batch"] == [1.0] and all(math.isfinite(v) for v in d["ratio"])


@pytest.mark.parametrize("lengths", ["", "abc", "0, 3", "4, 9999"])
def test_bad_lengths_are_explained(lengths):
    with pytest.raises(EdgeCase):
        render_accumulation(lengths=lengths)
    ex = accumulation_explorer(lengths=lengths)
    assert ex.last_view.text.startswith("Nothing to draw here")


def test_too_many_samples_is_an_edge_case_not_a_crash():
    ex = accumulation_explorer()
    ex.controls["per_device_batch_size"].value = 4
    ex.controls["world_size"].value = 4  # 4 x 4 x 4 = 64 > MAX_SAMPLES
    assert f"more than {MAX_SAMPLES}" in ex.last_view.text


def test_large_setups_skip_the_gradient_but_keep_the_bars():
    view = render_accumulation(lengths="300", per_device_batch_size=2, ga_steps=8, world_size=2)
    assert view.data["gaps"] is None and "skipped" in view.text
    assert len(view.data["naive"]) == 32


def test_one_long_sample_padding_many_short_ones_skips_the_gradient():
    # 8 rows padded to 513 columns: within the token budget, far over the attention-cell budget
    view = render_accumulation(lengths="512, 1, 1, 1, 1, 1, 1, 1", ga_steps=8)
    assert view.data["gaps"] is None and "pads many short ones" in view.text
    assert view.data["naive"] == pytest.approx([1 / 8] * 8)


def test_explorer_reuses_its_own_figure_and_redraws_it():
    ex = accumulation_explorer()
    first = ex.last_view.figure
    png = ex.out.outputs[0]["data"]["image/png"]
    ex.controls["normalization"].value = "global"  # same layout: same figure, same bars
    assert ex.last_view.figure is first and ex.out.outputs[0]["data"]["image/png"] == png
    ex.controls["lengths"].value = "3, 3, 3, 30"  # same layout, new heights: a new picture
    assert ex.last_view.figure is first and ex.out.outputs[0]["data"]["image/png"] != png
    png = ex.out.outputs[0]["data"]["image/png"]
    ex.controls["ga_steps"].value = 2  # fewer samples: the same figure, redrawn
    assert ex.last_view.figure is first and ex.out.outputs[0]["data"]["image/png"] != png
    other = accumulation_explorer()  # each explorer owns its figure: none is shared
    assert other.last_view.figure is not first


@pytest.mark.parametrize("normalization", ["naive", "sum"])
def test_the_explorer_gap_is_the_real_accumulation_loop(normalization):
    """The gap the explorer prints is the distance of ``accumulated_grad`` (a real GA loop, one
    backward per micro-batch, ranks averaged) to the full-batch gradient, on the explorer's model."""
    import torch

    from lossviz.model import TinyCausalLM
    from lossviz.reductions import weights
    from lossviz.step_gradients import accumulated_grad, token_batch, weighted_grad
    from lossviz.widgets.accumulation import _WIDGET_MODEL

    view = render_accumulation("5, 17, 9, 30", 1, 2, 2, normalization)
    lengths = view.data["lengths"]
    batch = token_batch(lengths, vocab_size=_WIDGET_MODEL.vocab_size, seed=0)
    model = TinyCausalLM(_WIDGET_MODEL)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the explorer's thread count: the same float rounding, to the bit
    try:
        full = weighted_grad(model, batch, weights(batch.loss_mask()))
        for name, label in [("global", "global GA (float rounding)"), (normalization, None)]:
            ga = accumulated_grad(model, batch, ga_steps=2, world_size=2, normalize=name)
            expected = float(torch.linalg.vector_norm((ga - full).double()))
            assert view.data["gaps"][label or f"{name} GA"] == expected
    finally:
        torch.set_num_threads(before)
    assert view.data["gaps"][f"{normalization} GA"] > 1e-3  # the bug, far above rounding
