"""Each TRL loss type's gate g(r), by hand (the trainer measurement is tests/test_trl_grpo.py)."""

import math

import pytest
import torch

from lossviz import rl, rl_ratio

MASK = rl.response_mask([2, 3])
ADV = torch.tensor([1.0, -1.0], dtype=torch.float64)


def lr(value):
    return torch.full(MASK.shape, math.log(value), dtype=torch.float64)


def test_every_gate_is_one_on_policy_except_cispos():
    zero = torch.zeros(MASK.shape, dtype=torch.float64)
    for name in ("grpo", "bnpo", "dr_grpo", "dapo", "sapo", "luspo", "vespo", "gspo"):
        assert torch.allclose(rl_ratio.gate(name, zero, ADV, MASK), torch.ones_like(zero)), name
    assert torch.allclose(rl_ratio.gate("cispo", zero, ADV, MASK), torch.full_like(zero, 0.2))
    assert torch.allclose(
        rl_ratio.gate("cispo", zero, ADV, MASK, epsilon_high=5.0), torch.ones_like(zero)
    )


def test_the_clip_zeroes_the_side_it_protects():
    up = rl_ratio.gate("grpo", lr(1.5), ADV, MASK)  # r = 1.5 > 1.2
    assert up[0, 0] == 0 and up[1, 0] == pytest.approx(1.5)  # A > 0 clipped; A < 0 keeps r
    down = rl_ratio.gate("grpo", lr(0.5), ADV, MASK)  # r = 0.5 < 0.8
    assert down[0, 0] == pytest.approx(0.5) and down[1, 0] == 0
    delta = rl_ratio.gate(
        "grpo", lr(3.0), ADV, MASK, delta=2.0
    )  # INTELLECT-2's upper bound for A < 0
    assert delta[1, 0] == 0


def test_sapo_and_vespo_by_hand():
    r = 1.5
    s = 1 / (1 + math.exp(-(r - 1)))  # tau = 1 for A > 0
    assert float(rl_ratio.gate("sapo", lr(r), ADV, MASK)[0, 0]) == pytest.approx(
        4 * s * (1 - s) * r
    )
    w = r**2  # response 0 has two tokens: w = exp(2 log r)
    phi = math.exp(3.0 + 2.0 * math.log(w) - 3.0 * w)  # k = 2, lambda = 3 for A >= 0
    assert float(rl_ratio.gate("vespo", lr(r), ADV, MASK)[0, 0]) == pytest.approx(phi)


def test_gates_are_trls_and_levels_are_checked():
    with pytest.raises(ValueError, match="TRL"):
        rl_ratio.gate("verl:token-mean", lr(1.0), ADV, MASK)
    with pytest.raises(ValueError, match="level"):
        rl_ratio.ratio_of(lr(1.0), MASK, "batch")
    g = rl_ratio.policy_gradient(MASK, ADV, "trl:grpo")
    torch.testing.assert_close(g, rl.gradient_weights(MASK, ADV, "trl:grpo"))
