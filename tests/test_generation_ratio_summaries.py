"""Notebook 07: which summary of Rg predicts what, on the bundled conversations.

A token mean's completion share is ``Σc / (Σc + plw·Σp)``: the pooled ratio, a prompt-weighted
arithmetic mean of Rg. The geometric mean sits near the median conversation instead.
"""

import statistics

import pytest
import torch

import lossviz as lv


@pytest.fixture(scope="module")
def data():
    chats = lv.chat.load_chats()
    tokenized = [lv.chat.tokenize(c) for c in chats]
    counts = [lv.prompt_loss.token_counts(t) for t in tokenized]
    masks = [lv.chat.loss_mask(t, "assistant", 0.1) for t in tokenized]
    return counts, torch.nn.utils.rnn.pad_sequence(masks, batch_first=True)


def test_pooled_ratio_is_a_prompt_weighted_arithmetic_mean(data):
    counts, _ = data
    c_all, p_all = (sum(x) for x in zip(*counts, strict=True))
    assert (c_all, p_all) == (2298, 3017)
    rg = [c / p for c, p in counts]
    weighted = sum(p * r for (_, p), r in zip(counts, rg, strict=True)) / p_all
    assert weighted == pytest.approx(c_all / p_all, rel=1e-12)


def test_token_mean_share_follows_the_pooled_ratio_not_either_mean(data):
    counts, batch = data
    c_all, p_all = (sum(x) for x in zip(*counts, strict=True))
    exact = float(lv.weights(batch, "token_mean")[batch == 1].sum())
    assert exact == pytest.approx(c_all / (c_all + 0.1 * p_all), abs=1e-5)  # float32 masks
    means = lv.prompt_loss.ratio_means([c / p for c, p in counts])
    share = {k: means[k] / (means[k] + 0.1) for k in ("arithmetic", "geometric")}
    # notebook 07's table: pooled 0.762 -> 0.884, arithmetic 2.322 -> 0.959, geometric 0.327 -> 0.766
    assert round(c_all / p_all, 3) == 0.762 and round(exact, 3) == 0.884
    assert (round(means["arithmetic"], 3), round(share["arithmetic"], 3)) == (2.322, 0.959)
    assert (round(means["geometric"], 3), round(share["geometric"], 3)) == (0.327, 0.766)
    assert share["geometric"] < exact < share["arithmetic"]


def test_geometric_mean_sits_near_the_median_and_sample_mean_averages_shares(data):
    counts, batch = data
    rg = [c / p for c, p in counts]
    own = [r / (r + 0.1) for r in rg]
    median = statistics.median(own)
    assert len(own) == 37 and median == sorted(own)[18]
    assert round(median, 3) == 0.781
    sample = float(lv.weights(batch, "sample_mean")[batch == 1].sum())
    assert sample == pytest.approx(sum(own) / len(own), abs=1e-5) and round(sample, 3) == 0.640
    geo = lv.prompt_loss.ratio_means(rg)["geometric"]
    assert abs(geo / statistics.median(rg) - 1) < 0.1  # 0.327 vs 0.357
