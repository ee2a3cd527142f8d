"""Label smoothing, z-loss and DFT as changes to a token's logit gradient, and the CE probe's read-out."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossviz import token_gradients as G
from lossviz.cross_entropy import token_losses


def random_case(seed, n=6, vocab=7):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, vocab, generator=gen, dtype=torch.float64) * 2
    return logits, torch.randint(0, vocab, (n,), generator=gen)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_label_smoothing_equals_f_cross_entropy(seed, eps):
    logits, labels = random_case(seed)
    logits.requires_grad_()
    ref = F.cross_entropy(logits, labels, label_smoothing=eps, reduction="none")
    # float64 log-softmax of 7 values: rounding ~1e-16
    torch.testing.assert_close(
        G.label_smoothing_losses(logits, labels, eps), ref, rtol=1e-12, atol=1e-14
    )
    ref.sum().backward()
    ours = G.label_smoothing_logit_grad(logits.detach(), labels, eps)
    torch.testing.assert_close(ours, logits.grad, rtol=1e-12, atol=1e-14)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1e-2))
def test_z_loss_gradient_is_autograd(seed, coef):
    logits, _ = random_case(seed)
    logits.requires_grad_()
    G.z_loss(logits, coef).sum().backward()
    torch.testing.assert_close(
        G.z_loss_logit_grad(logits.detach(), coef), logits.grad, rtol=1e-12, atol=1e-16
    )


def test_dft_is_a_weight_matrix_on_token_ce():
    logits, labels = random_case(5, n=8)
    logits = logits.reshape(2, 4, 7).requires_grad_()
    labels = labels.reshape(2, 4)
    labels[1, 2:] = -100
    w = G.dft_weights(logits, labels)
    p_y = torch.softmax(logits.detach(), -1).gather(-1, labels.clamp_min(0)[..., None])[..., 0]
    assert float(w[0, 0]) == pytest.approx(float(p_y[0, 0]) / 6) and w[1, 2:].abs().sum() == 0
    dft = G.dft_losses(logits, labels).sum() / 6
    lens = (w * token_losses(logits, labels)).sum()
    assert dft.item() == pytest.approx(lens.item(), rel=1e-12)
    g1 = torch.autograd.grad(dft, logits)[0]
    g2 = torch.autograd.grad(lens, logits)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-15)


def test_hand_example_dft_weights_for_p_09_05_01():
    """Notebook 13: three tokens whose label probabilities are 0.9, 0.5, 0.1."""
    logits = torch.tensor(
        [[math.log(9.0), 0.0], [0.0, 0.0], [-math.log(9.0), 0.0]], dtype=torch.float64
    )
    labels = torch.tensor([0, 0, 0])
    w = G.dft_weights(logits, labels)
    assert w.tolist() == [pytest.approx(0.3), pytest.approx(1 / 6), pytest.approx(1 / 30)]
    # the push on the label's logit: CE (1 - p)/N, DFT p (1 - p)/N: largest at p = 1/2
    push = -(w[:, None] * G.ce_logit_grad(logits, labels))[:, 0]
    assert push.tolist() == [pytest.approx(0.03), pytest.approx(1 / 12), pytest.approx(0.03)]


def test_probe_reads_ce_and_dft_exactly_but_not_smoothing_or_z_loss():
    logits, labels = random_case(11)
    ce = G.ce_logit_grad(logits, labels)
    w, rest = G.read_weight(2.5 * ce, logits, labels)
    assert w.tolist() == [pytest.approx(2.5)] * 6 and float(rest.max()) < 1e-12
    p_y = torch.softmax(logits, -1).gather(-1, labels[:, None])[:, 0]
    w, rest = G.read_weight(p_y[:, None] * ce, logits, labels)
    torch.testing.assert_close(w, p_y, rtol=1e-12, atol=1e-15)
    w, rest = G.read_weight(G.label_smoothing_logit_grad(logits, labels, 0.1), logits, labels)
    assert float(rest.min()) > 1e-3
    w, rest = G.read_weight(ce + G.z_loss_logit_grad(logits, 1e-2), logits, labels)
    assert float(rest.min()) > 1e-4
    w, rest = G.read_weight(torch.zeros_like(logits), logits, labels)
    assert float(w.abs().max()) == 0 and float(rest.max()) == 0


def test_hand_example_uniform_logits_smoothing_only_rescales():
    """At uniform logits the smoothed gradient is (1 - eps) times the CE gradient: the probe sees w = 0.9."""
    logits, labels = torch.zeros(1, 4, dtype=torch.float64), torch.tensor([0])
    g = G.label_smoothing_logit_grad(logits, labels, 0.1)
    assert g[0].tolist() == [pytest.approx(-0.675), *[pytest.approx(0.225)] * 3]
    w, rest = G.read_weight(g, logits, labels)
    assert float(w) == pytest.approx(0.9) and float(rest) < 1e-12


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda lg, y: G.label_smoothing_losses(lg, y, 1.5), r"\[0, 1\]"),
        (lambda lg, y: G.z_loss(lg, -1.0), "coef"),
        (lambda lg, y: G.read_weight(lg[:, :2], lg, y), "shape of logits"),
        (lambda lg, y: G.dft_weights(lg, torch.full_like(y, -100)), "0/0"),
        (lambda lg, y: G.ce_logit_grad(lg, y + 100), "out of range"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    logits, labels = random_case(0)
    with pytest.raises(ValueError, match=message):
        call(logits, labels)
