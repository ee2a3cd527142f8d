"""Notebook 01's shapes and shift table: gather's index, and one shift written three ways."""

import pytest
import torch
import torch.nn.functional as F

import lossviz as lv
from lossviz.model import TinyCausalLM
from lossviz.plots.shift import shift_figure


def test_gather_needs_an_index_with_the_inputs_dimensions():
    log_probs = torch.randn(4, 3).log_softmax(-1)
    target = torch.tensor([0, 2, 1, 1])
    assert log_probs.gather(-1, target.unsqueeze(-1)).shape == (4, 1)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        log_probs.gather(-1, target)
    logits = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[1, 4, 0], [2, 2, 3]])
    picked = logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1))
    assert picked.shape == (2, 3, 1) and picked.squeeze(-1).shape == (2, 3)
    assert torch.allclose(-picked.squeeze(-1), lv.token_losses(logits, labels))


def test_a_tokens_weight_sits_at_t_minus_1_and_matches_t_minus_1_pairs():
    ids = torch.tensor([[5, 9, 2, 7]])
    answer = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    weight_at = lv.shift_labels(answer, ignore_index=0)
    assert lv.shift_labels(ids).tolist() == [[9, 2, 7, -100]]
    assert weight_at.tolist() == [[0, 1, 1, 0]]
    with torch.no_grad():
        out = TinyCausalLM()(ids)
    ours = (weight_at * lv.token_losses(out, ids, shift=True)).sum()
    pairs = (answer[0, 1:] * F.cross_entropy(out[0, :-1], ids[0, 1:], reduction="none")).sum()
    assert torch.allclose(ours, pairs)
    assert round(float(ours), 4) == 8.3079  # notebook 01 prints it; float32 spread ~1e-6


def test_the_answer_only_labels_notebook_01_draws():
    ids = torch.tensor([[5, 9, 2, 7]])
    weight_at = lv.shift_labels(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), ignore_index=0)
    labels = lv.shift_labels(ids).masked_fill(weight_at == 0, -100)
    assert labels.tolist() == [[-100, 2, 7, -100]]
    fig = shift_figure(ids[0].tolist(), labels[0].tolist())
    assert any("trained (2)" in t.get_text() for t in fig.axes[0].texts)


def test_rounding_the_four_probabilities_moves_each_log_by_under_2e_4():
    logits = torch.tensor(
        [[2.0, 0.5, 1.0], [0.1, 1.0, 0.3], [0.5, 1.2, 0.3], [0.98, 0.6, 0.17]], dtype=torch.float64
    )
    p = logits.softmax(-1).gather(1, torch.tensor([[0], [2], [1], [1]])).squeeze(1)
    rounded = torch.round(p * 1e4) / 1e4
    assert round(float(p.min()), 4) == 0.2609
    assert (5e-5 / p).max() < 2e-4
    shifts = (rounded.log() - p.log()).abs()
    assert (shifts < 2e-4).all()
    gap = float(-rounded.log().sum() + p.log().sum())
    assert f"{gap:.1e}" == "9.7e-05" and gap < shifts.sum()  # the shifts partly cancel
