"""Distillation KL reductions as W, against torch.nn.functional.kl_div."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossviz import distillation as D


def kl_div(student, teacher, reduction):
    with warnings.catch_warnings():  # torch warns that reduction="mean" averages over V too
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(
            student.log_softmax(-1), teacher.log_softmax(-1), reduction=reduction, log_target=True
        )


def test_hand_example_one_kl_everywhere():
    """Notebook 13: student uniform over 2 tokens, teacher (3/4, 1/4) at every one of B=2, T=3 positions."""
    student = torch.zeros(2, 3, 2, dtype=torch.float64)
    teacher = torch.tensor([math.log(3.0), 0.0], dtype=torch.float64).expand(2, 3, 2)
    kl = D.token_kl(student, teacher)
    by_hand = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)  # 0.1308
    assert kl.tolist() == [[pytest.approx(by_hand)] * 3] * 2
    assert round(by_hand, 4) == 0.1308
    got = {r: float(D.kl_loss(student, teacher, r)) for r in D.KL_REDUCTIONS}
    assert got["token_mean"] == pytest.approx(by_hand)
    assert got["batchmean"] == pytest.approx(3 * by_hand)  # T = 3 times the token mean
    assert got["batchmean_flat"] == pytest.approx(by_hand)
    assert got["mean"] == pytest.approx(by_hand / 2)  # V = 2
    assert got["sum"] == pytest.approx(6 * by_hand)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(2, 9), st.integers(0, 2**31 - 1))
def test_reductions_equal_kl_div(batch, length, vocab, seed):
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(batch, length, vocab, generator=gen, dtype=torch.float64)
    t = torch.randn(batch, length, vocab, generator=gen, dtype=torch.float64)
    for reduction in ("batchmean", "mean", "sum"):
        ours = float(D.kl_loss(s, t, reduction))
        assert ours == pytest.approx(float(kl_div(s, t, reduction)), rel=1e-12, abs=1e-15)
    flat = kl_div(s.reshape(-1, vocab), t.reshape(-1, vocab), "batchmean")
    assert float(D.kl_loss(s, t, "batchmean_flat")) == pytest.approx(float(flat), rel=1e-12)
    assert float(D.kl_loss(s, t, "token_mean")) == pytest.approx(float(flat), rel=1e-12)
    none = kl_div(s, t, "none").sum(-1)
    torch.testing.assert_close(D.token_kl(s, t), none, rtol=1e-12, atol=1e-14)


def test_kl_div_counts_padding_token_mean_does_not():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 4, 5, generator=gen, dtype=torch.float64)
    t = torch.randn(2, 4, 5, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float64)
    s = torch.where(mask.bool()[..., None], s, t)  # padding: student = teacher, KL 0
    kl = D.token_kl(s, t)
    masked_mean = float((kl * mask).sum() / mask.sum())
    assert float(D.kl_loss(s, t, "token_mean", mask=mask)) == pytest.approx(masked_mean)
    flat = float(kl_div(s.reshape(-1, 5), t.reshape(-1, 5), "batchmean"))
    assert flat == pytest.approx(masked_mean * 5 / 8)  # 5 trained of 8 positions counted


def test_temperature_softens_both():
    s, t = torch.tensor([[[2.0, 0.0]]]), torch.tensor([[[0.0, 2.0]]])
    assert float(D.token_kl(s, t, temperature=4.0)) < float(D.token_kl(s, t))


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: D.token_kl(torch.zeros(2, 3), torch.zeros(2, 4)), "one shape"),
        (lambda: D.token_kl(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0), "temperature"),
        (lambda: D.kl_weights(torch.ones(2, 3), "avg", 4), "unknown KL reduction"),
        (lambda: D.kl_weights(torch.ones(3), "sum", 4), r"\[B, T\]"),
        (lambda: D.kl_weights(torch.ones(2, 3), "mean", 0), "vocab_size"),
        (lambda: D.kl_weights(torch.zeros(2, 3), "token_mean", 4), "0/0"),
        (lambda: D.kl_loss(torch.zeros(2, 3), torch.zeros(2, 3)), r"\[B, T, V\]"),
        (lambda: D.kl_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), mask=torch.ones(2)), "mask"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
