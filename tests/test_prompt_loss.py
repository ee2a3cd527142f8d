"""Generation ratio, its means, and the completion's share of the weight under a prompt weight."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lossviz as lv
from lossviz.chat import load_chat_kinds, load_chats, loss_mask, tokenize
from lossviz.prompt_loss import completion_share, generation_ratio, ratio_means, token_counts

CHAT = [
    {"role": "user", "content": "the cat"},
    {"role": "assistant", "content": "it ran"},
    {"role": "user", "content": "then"},
    {"role": "assistant", "content": "far away then"},
]


def test_counts_and_ratio_by_hand():
    t = tokenize(CHAT)  # 29 tokens: 3 + 4 trained under "assistant"
    assert token_counts(t, "assistant") == (7, 22)
    assert generation_ratio(t, "assistant") == pytest.approx(7 / 22)
    assert generation_ratio(t, "last_assistant") == pytest.approx(4 / 25)
    assert generation_ratio(t, "assistant", train_end_of_turn=False) == pytest.approx(5 / 24)
    with pytest.raises(ValueError, match="all"):
        generation_ratio(t, "all")


def test_share_formula_matches_the_weighted_token_mean():
    t = tokenize(CHAT)
    trained = loss_mask(t, "assistant").bool()
    rg = generation_ratio(t)
    for plw in (0.0, 0.01, 0.1, 0.5, 1.0):
        w = lv.weights(loss_mask(t, "assistant", plw).unsqueeze(0), "token_mean")[0]
        assert float(w[trained].sum()) == pytest.approx(rg / (rg + plw))
        assert float(completion_share(7, 22, plw)) == pytest.approx(rg / (rg + plw))


def test_race_like_ratio_leaves_the_completion_a_tenth():
    # Rg = 0.01: plw = 0.1 gives the completion 0.01 / 0.11 of the weight, about 9 %
    share = float(completion_share(1, 100, 0.1))
    assert share == pytest.approx(1 / 11) and 0.09 < share < 0.091
    shares = completion_share(1, 100, torch.tensor([0.0, 0.01, 1.0]))
    assert torch.allclose(shares, torch.tensor([1.0, 0.5, 1 / 101], dtype=torch.float64))


def test_dataset_share_sums_tokens():
    assert float(completion_share([1, 9], [100, 10], 1.0)) == pytest.approx(10 / 120)


@given(st.floats(1e-4, 1e4), st.floats(0.0, 1.0))
def test_share_is_between_zero_and_one_and_falls_with_plw(rg, plw):
    share = float(completion_share(rg, 1.0, plw))
    assert 0.0 < share <= 1.0
    assert share <= float(completion_share(rg, 1.0, plw / 2)) + 1e-12


def test_means_by_hand():
    m = ratio_means([0.01, 1.0, 100.0])
    assert m["arithmetic"] == pytest.approx(101.01 / 3)
    assert m["geometric"] == pytest.approx(1.0)
    assert m["n"] == 3


@given(st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=20))
def test_geometric_mean_never_exceeds_arithmetic(rs):
    m = ratio_means(rs)
    assert m["geometric"] <= m["arithmetic"] * (1 + 1e-9)
    assert min(rs) * (1 - 1e-9) <= m["geometric"] <= max(rs) * (1 + 1e-9)


def test_bundled_chats_span_orders_of_magnitude():
    rg = [generation_ratio(tokenize(c)) for c in load_chats()]
    kinds = load_chat_kinds()
    mc = [r for r, k in zip(rg, kinds, strict=True) if k == "multiple_choice"]
    long = [r for r, k in zip(rg, kinds, strict=True) if k == "long_answer"]
    assert 0.005 < ratio_means(mc)["geometric"] < 0.02  # RACE-like, about 0.01
    assert ratio_means(long)["geometric"] > 3
    all_means = ratio_means(rg)
    assert all_means["arithmetic"] > 5 * all_means["geometric"]  # skewed: the means disagree
    assert math.log10(max(rg) / min(rg)) > 3


@pytest.mark.parametrize("bad", [[], [0.0], [-1.0], [float("inf")]])
def test_bad_ratios(bad):
    with pytest.raises(ValueError):
        ratio_means(bad)


def test_bad_shares():
    with pytest.raises(ValueError, match="prompt_weight"):
        completion_share(1, 1, 1.5)
    with pytest.raises(ValueError, match="no completion"):
        completion_share(0, 10, 0.5)
    user_only = tokenize([{"role": "assistant", "content": "the"}])
    assert token_counts(user_only)[1] > 0  # the template is prompt


def test_shifted_weights_lose_the_first_token_only():
    t = tokenize(CHAT)
    c, p = token_counts(t)
    trained = lv.shift_labels(loss_mask(t)[None], ignore_index=0) == 1
    for plw in (0.1, 0.5):
        m = lv.shift_labels(loss_mask(t, "assistant", plw)[None], ignore_index=0)
        share = float(lv.weights(m, "token_mean")[trained].sum())
        assert share == pytest.approx(c / (c + plw * (p - 1)))
