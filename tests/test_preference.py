"""Preference losses: hand-computed weights, the papers' formulas, and autograd."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossviz import preference as P


def pair(n_chosen, n_rejected, logp_c=-1.0, logp_r=-1.0):
    """One row per pair, every response token at the given log-prob, right-padded."""
    width = max(n_chosen + n_rejected)
    rows = []
    for lengths, value in ((n_chosen, logp_c), (n_rejected, logp_r)):
        mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).double()
        rows += [mask * value, mask]
    return rows


def test_hand_example_first_step_two_vs_four_tokens():
    """Notebook 13's hand example: chosen 2 tokens, rejected 4, policy = reference (log-probs -1)."""
    c, cm, r, rm = pair([2], [4])
    ref = dict(ref_chosen=c.clone(), ref_rejected=r.clone())
    w_c, w_r = P.preference_weights("dpo", c, cm, r, rm, beta=0.1, **ref)
    assert w_c[0, :2].tolist() == [pytest.approx(0.05)] * 2  # beta * sigma(0) = 0.1 / 2
    assert w_r[0].tolist() == [pytest.approx(-0.05)] * 4
    assert (float(w_c.sum()), float(w_r.sum())) == (pytest.approx(0.1), pytest.approx(-0.2))
    w_c, w_r = P.preference_weights("simpo", c, cm, r, rm, beta=2.0, gamma=1.0)
    s = 2.0 / (1 + math.exp(-1.0))  # beta * sigma(gamma) with equal averages: 1.4621
    assert float(w_c[0, 0]) == pytest.approx(s / 2) and float(w_r[0, 0]) == pytest.approx(-s / 4)
    assert float(w_c.sum()) == pytest.approx(-float(w_r.sum())) == pytest.approx(1.4621, abs=1e-4)
    w_c, w_r = P.preference_weights("ipo", c, cm, r, rm, beta=0.1, **ref)
    assert float(w_c[0, 0]) == pytest.approx(5.0) and float(w_r[0, 0]) == pytest.approx(-2.5)
    assert float(P.pair_loss("ipo", c, cm, r, rm, beta=0.1, **ref)) == pytest.approx(25.0)
    assert float(P.pair_loss("dpo", c, cm, r, rm, beta=0.1, **ref)) == pytest.approx(math.log(2))
    assert w_c[0, 2:].tolist() == [0.0, 0.0]  # padding


def test_papers_formulas():
    gen = torch.Generator().manual_seed(3)
    c, r, rc, rr = (torch.randn(5, generator=gen, dtype=torch.float64) for _ in range(4))
    beta = 0.3
    # DPO Eq. 7: -log sigma(beta log pi(yw)/ref(yw) - beta log pi(yl)/ref(yl))
    expect = -torch.log(torch.sigmoid(beta * (c - rc) - beta * (r - rr))).mean()
    assert float(P.dpo_loss(c, r, rc, rr, beta)) == pytest.approx(float(expect))
    # SimPO Eq. 6: -log sigma(beta/|yw| log pi(yw) - beta/|yl| log pi(yl) - gamma), on averages
    expect = -torch.log(torch.sigmoid(beta * c - beta * r - 0.7)).mean()
    assert float(P.simpo_loss(c, r, beta, 0.7)) == pytest.approx(float(expect))
    # IPO Eq. 17 with tau = beta: (h - 1/(2 tau))^2
    expect = ((c - r - 1 / (2 * beta)) ** 2).mean()
    assert float(P.ipo_loss(c, r, beta)) == pytest.approx(float(expect))
    assert float(P.dpo_loss(c, r, rc, rr, beta)) == pytest.approx(
        float(F.softplus(-beta * ((c - rc) - (r - rr))).mean())
    )


lengths = st.lists(st.integers(1, 9), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None)
@given(lengths, st.data(), st.sampled_from(P.LOSSES), st.booleans(), st.integers(0, 2**31 - 1))
def test_weights_are_minus_the_autograd_gradient(n_c, data, loss, normalized, seed):
    n_r = data.draw(st.lists(st.integers(1, 9), min_size=len(n_c), max_size=len(n_c)))
    gen = torch.Generator().manual_seed(seed)
    _, cm, _, rm = pair(n_c, n_r)
    c = (torch.randn(cm.shape, generator=gen, dtype=torch.float64) * cm).requires_grad_()
    r = (torch.randn(rm.shape, generator=gen, dtype=torch.float64) * rm).requires_grad_()
    kw = dict(
        ref_chosen=torch.randn(cm.shape, generator=gen, dtype=torch.float64),
        ref_rejected=torch.randn(rm.shape, generator=gen, dtype=torch.float64),
        beta=0.4,
        gamma=0.5,
        length_normalized=normalized,
    )
    P.pair_loss(loss, c, cm, r, rm, **kw).backward()
    w_c, w_r = P.preference_weights(loss, c.detach(), cm, r.detach(), rm, **kw)
    # float64, a handful of terms: rounding ~1e-16
    torch.testing.assert_close(w_c, -c.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(w_r, -r.grad, rtol=1e-12, atol=1e-14)


def test_dpo_weight_per_token_ignores_length_simpo_divides_by_it():
    c, cm, r, rm = pair([3, 30], [30, 3])
    ref = dict(ref_chosen=c.clone(), ref_rejected=r.clone())
    w_c, _ = P.preference_weights("dpo", c, cm, r, rm, beta=0.1, **ref)
    assert float(w_c[0, 0]) == float(w_c[1, 0])  # same per token
    assert float(w_c[1].sum()) == pytest.approx(10 * float(w_c[0].sum()))  # 10x the total
    w_c, _ = P.preference_weights("simpo", c, cm, r, rm, beta=2.0, gamma=1.0)
    assert float(w_c[0].sum()) == pytest.approx(float(w_c[1].sum()))  # same total


def test_long_pairs_saturate_dpo_sooner():
    """Each token gains 0.1 on the chosen and loses 0.1 on the rejected side: z grows with n."""
    slopes = []
    for n in (10, 100):
        c, cm, r, rm = pair([n], [n], -0.9, -1.1)
        ref = dict(ref_chosen=-cm, ref_rejected=-rm)
        w_c, _ = P.preference_weights("dpo", c, cm, r, rm, beta=0.1, **ref)
        slopes.append(float(w_c[0, 0]) / 0.1)  # sigma(-z)
    assert slopes == [
        pytest.approx(1 / (1 + math.exp(0.2))),
        pytest.approx(1 / (1 + math.exp(2.0))),
    ]


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda a: P.preference_weights("kto", *a), "unknown preference loss"),
        (lambda a: P.pair_loss("dpo", *a), "needs the reference"),
        (lambda a: P.preference_weights("ipo", *a), "needs the reference"),
        (lambda a: P.pair_loss("simpo", *a, beta=0.0), "beta must be a positive"),
        (lambda a: P.pair_loss("simpo", a[0], a[1][:, :1], a[2], a[3]), "one shape"),
        (lambda a: P.pair_loss("simpo", a[0], a[1] * 0, a[2], a[3]), "at least one trained"),
        (lambda a: P.pair_loss("simpo", a[0], a[1], a[2][:0], a[3][:0]), "1 chosen but 0"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call(pair([2], [3]))


def test_uniform_logps_and_shifted_pairs_match_the_hand_built_pairs():
    logp, mask = P.uniform_logps([2, 3], -0.5)
    assert logp.tolist() == [[-0.5, -0.5, 0.0], [-0.5, -0.5, -0.5]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]] and logp.dtype == torch.float64
    c, cm, r, rm = pair([4, 40], [40, 4], logp_c=-0.8, logp_r=-1.3)
    ref_c, _, ref_r, _ = pair([4, 40], [40, 4])
    for loss in P.LOSSES:
        kw = dict(ref_chosen=ref_c, ref_rejected=ref_r, beta=0.3, gamma=0.5)
        w_c, w_r, value = P.shifted_pair_weights(
            loss, [4, 40], [40, 4], chosen_shift=0.2, rejected_shift=-0.3, beta=0.3, gamma=0.5
        )
        want_c, want_r = P.preference_weights(loss, c, cm, r, rm, **kw)
        assert torch.allclose(w_c, want_c) and torch.allclose(w_r, want_r)
        assert value == pytest.approx(float(P.pair_loss(loss, c, cm, r, rm, **kw)))
    with pytest.raises(ValueError, match="one of each per pair"):
        P.shifted_pair_weights("dpo", [1, 2], [1])
    with pytest.raises(ValueError, match="at least one token"):
        P.uniform_logps([2, 0], -1.0)
