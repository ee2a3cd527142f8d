"""The GA claim on real gradients of the tiny model, not only on loss values."""

import copy

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import lossviz as lv
from lossviz.model import TinyCausalLM, TinyConfig
from lossviz.step_gradients import _rows_losses

LENGTHS = [12, 40, 7, 30, 5, 17]


@pytest.fixture(scope="module")
def setup():
    cfg = TinyConfig(context_length=64)
    return TinyCausalLM(cfg), lv.step_gradients.token_batch(
        LENGTHS, vocab_size=cfg.vocab_size, seed=1
    )


def test_token_batch_trains_exactly_the_requested_tokens():
    batch = lv.step_gradients.token_batch([4, 3, 1])
    assert batch.loss_mask().sum(1).tolist() == [4.0, 3.0, 1.0]
    assert torch.equal(
        batch.input_ids, lv.step_gradients.token_batch([4, 3, 1]).input_ids
    )  # seeded


def test_micro_batch_forward_cut_to_its_own_width_gives_the_same_losses(setup):
    model, batch = setup
    full = _rows_losses(model, batch, torch.arange(len(LENGTHS)))
    alone = _rows_losses(model, batch, torch.tensor([2]))  # 7 tokens: cut to 8 columns
    assert alone.shape == (1, batch.labels.shape[1])
    assert torch.allclose(alone[0], full[2], atol=1e-6)


@pytest.mark.parametrize("G, R", [(2, 1), (3, 1), (6, 1), (2, 2), (1, 3)])
def test_global_ga_loop_equals_full_batch_gradient(setup, G, R):
    model, batch = setup
    full = lv.step_gradients.weighted_grad(model, batch, lv.weights(batch.loss_mask()))
    ga = lv.step_gradients.accumulated_grad(
        model, batch, ga_steps=G, world_size=R, normalize="global"
    )
    assert (ga - full).abs().max() < 1e-6  # float rounding only
    assert full.abs().max() > 1e-3


@pytest.mark.parametrize("normalize", ["naive", "sum"])
@pytest.mark.parametrize("G, R", [(3, 1), (2, 2)])
def test_ga_loop_gradient_is_the_gradient_w_predicts(setup, normalize, G, R):
    model, batch = setup
    mask = batch.loss_mask()
    kw = {"ga_steps": G, "world_size": R, "normalize": normalize}
    ga = lv.step_gradients.accumulated_grad(model, batch, **kw)
    predicted = lv.step_gradients.weighted_grad(model, batch, lv.accumulation_weights(mask, **kw))
    full = lv.step_gradients.weighted_grad(model, batch, lv.weights(mask))
    assert (ga - predicted).abs().max() < 1e-6
    assert (ga - full).abs().max() > 1e-3  # the bug is a thousand times the rounding


def test_sample_mean_global_loop_matches_the_full_batch(setup):
    model, batch = setup
    full = lv.step_gradients.weighted_grad(
        model, batch, lv.weights(batch.loss_mask(), "sample_mean")
    )
    ga = lv.step_gradients.accumulated_grad(model, batch, ga_steps=4, reduction="sample_mean")
    assert (ga - full).abs().max() < 1e-6


def test_float64_shrinks_the_rounding_but_not_the_bug(setup):
    model, batch = setup
    model64 = copy.deepcopy(model).double()
    mask = batch.loss_mask()
    full = lv.step_gradients.weighted_grad(model64, batch, lv.weights(mask).double())
    ga = lv.step_gradients.accumulated_grad(model64, batch, ga_steps=3, normalize="global")
    naive = lv.step_gradients.accumulated_grad(model64, batch, ga_steps=3, normalize="naive")
    assert (ga - full).abs().max() < 1e-13
    assert (naive - full).abs().max() > 1e-3


def test_gradient_gap_report_separates_rounding_from_the_bug():
    r = lv.step_gradients.gradient_gap([4, 3], ga_steps=2)
    assert r["global_vs_full_max"] < 1e-6
    assert r["naive_vs_predicted_max"] < 1e-6
    assert r["naive_vs_full_l2"] > 1e4 * r["global32_vs_full64_l2"]
    assert abs(r["predicted_vs_full_max"] - r["naive_vs_full_max"]) < 1e-6


@settings(max_examples=12, deadline=None)
@given(
    st.lists(st.integers(1, 20), min_size=1, max_size=6),
    st.integers(1, 4),
    st.integers(1, 2),
    st.sampled_from(["naive", "global", "sum"]),
)
@example([19, 20, 12, 14, 5, 3], 1, 2, "sum")  # 1.19e-6 apart in float32: rounding at |g| = 3
def test_any_ga_loop_gradient_is_the_gradient_of_w(lengths, G, R, normalize):
    if len(lengths) < R:
        return
    model = TinyCausalLM(TinyConfig(context_length=32))
    batch = lv.step_gradients.token_batch(
        lengths, vocab_size=model.cfg.vocab_size, seed=len(lengths)
    )
    kw = {"ga_steps": G, "world_size": R, "normalize": normalize}
    ga = lv.step_gradients.accumulated_grad(model, batch, **kw)
    W = lv.accumulation_weights(batch.loss_mask(), **kw)
    predicted = lv.step_gradients.weighted_grad(model, batch, W)
    # float32 rounding grows with the gradient's size (unnormalized `sum` reaches about 3, where
    # one ulp is 2.4e-7): allow a few ulps of the largest entry, far below any weighting error
    tol = 2e-6 * max(1.0, predicted.abs().max().item())
    assert (ga - predicted).abs().max() < tol
