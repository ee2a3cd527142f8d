"""RL aggregation modes: hand-computed cases, the projects' own formulas, and autograd."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz as lv
from lossviz import rl


def trl_loss(per_token_loss, mask, loss_type, max_completion_length, num_processes=1):
    """TRL GRPOTrainer._compute_loss aggregation, one process, one accumulation step (as documented)."""
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length)
    if loss_type == "dapo":  # num_items_in_batch = tokens gathered over all processes
        return (per_token_loss * mask).sum() / (mask.sum() / num_processes)
    raise ValueError(loss_type)


def verl_loss(loss_mat, loss_mask, mode):
    """verl core_algos.agg_loss."""
    if mode == "token-mean":
        return (loss_mat * loss_mask).sum() / loss_mask.sum()
    if mode == "seq-mean-token-sum":
        return (loss_mat * loss_mask).sum(-1).mean()
    if mode == "seq-mean-token-mean":
        return ((loss_mat * loss_mask).sum(-1) / loss_mask.sum(-1)).mean()
    if mode == "seq-mean-token-sum-norm":  # verl 0.9.1: the sequence mean, then / T
        return (loss_mat * loss_mask).sum(-1).mean() / loss_mask.shape[-1]
    raise ValueError(mode)


def test_hand_computed_weights_for_lengths_2_and_4():
    mask = rl.response_mask([2, 4])  # B = 2, N = 6, T = 4
    expect = {  # weight of a token of response 0, of response 1
        "trl:grpo": (1 / 4, 1 / 8),
        "trl:bnpo": (1 / 6, 1 / 6),
        "trl:dapo": (1 / 6, 1 / 6),
        "trl:dr_grpo": (1 / 16, 1 / 16),  # max_length = 8: 1 / (2 * 8)
        "trl:cispo": (1 / 6, 1 / 6),
        "trl:sapo": (1 / 4, 1 / 8),
        "trl:luspo": (1 / 2, 1 / 2),
        "trl:vespo": (1 / 6, 1 / 6),
        "trl:gspo": (1 / 4, 1 / 8),
        "verl:token-mean": (1 / 6, 1 / 6),
        "verl:token-sum": (1, 1),
        "verl:seq-mean-token-mean": (1 / 4, 1 / 8),
        "verl:seq-mean-token-sum": (1 / 2, 1 / 2),
        "verl:seq-mean-token-sum-norm": (1 / 16, 1 / 16),  # verl 0.9.1: 1 / (B' * 8)
    }
    assert set(expect) == set(rl.mode_names())
    for mode, (w0, w1) in expect.items():
        w = rl.mode_weights(mask, mode, max_length=8)
        assert w[0, :2].tolist() == [pytest.approx(w0)] * 2, mode
        assert w[1].tolist() == [pytest.approx(w1)] * 4, mode
        assert w[0, 2:].abs().sum() == 0
    assert rl.mode_weights(mask, "verl:seq-mean-token-sum-norm")[0, 0] == pytest.approx(1 / 8)


def test_each_mode_maps_to_a_core_reduction():
    for m in rl.MODES.values():
        assert m.reduction in lv.REDUCTIONS
    assert rl.resolve_mode("dr_grpo").reduction == "constant_norm"
    assert rl.resolve_mode("seq-mean-token-sum-norm").reduction == "constant_norm"
    assert len(rl.mode_table()) == 14
    with pytest.raises(ValueError, match="unknown RL mode"):
        rl.resolve_mode("ppo")


lengths_st = st.lists(st.integers(1, 12), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(lengths_st, st.integers(0, 2**31 - 1), st.integers(0, 8))
def test_modes_equal_the_projects_formulas(lengths, seed, extra):
    mask = rl.response_mask(lengths, max_length=max(lengths) + extra)
    losses = torch.randn(
        mask.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    l_max = mask.shape[1]
    for name in ("grpo", "bnpo", "dr_grpo", "dapo"):
        ours = (rl.mode_weights(mask, f"trl:{name}", max_length=l_max) * losses).sum()
        assert float(ours) == pytest.approx(float(trl_loss(losses, mask, name, l_max)), abs=1e-12)
    for name in (
        "token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum-norm",
    ):
        ours = (rl.mode_weights(mask, f"verl:{name}") * losses).sum()
        assert float(ours) == pytest.approx(float(verl_loss(losses, mask, name)), abs=1e-12)


def test_verl_sum_norm_equals_trl_dr_grpo():
    """verl 0.9.1 divides by B' and C: the same as TRL dr_grpo (no factor B between them)."""
    mask = rl.response_mask([3, 9, 5])
    losses = torch.rand(mask.shape, dtype=torch.float64)
    verl = verl_loss(losses, mask, "seq-mean-token-sum-norm")
    trl = trl_loss(losses, mask, "dr_grpo", mask.shape[1])
    assert float(verl) == pytest.approx(float(trl))


def test_dapo_over_processes_is_the_global_token_mean():
    """Each rank divides by N_global / R; DDP averages the R gradients: the sum over ranks / N_global."""
    masks = [rl.response_mask([3, 8]), rl.response_mask([1, 2])]
    losses = [torch.rand(m.shape, dtype=torch.float64) for m in masks]
    n_global = sum(float(m.sum()) for m in masks)
    per_rank = [(lo * m).sum() / (n_global / 2) for lo, m in zip(losses, masks, strict=True)]
    ddp = sum(per_rank) / 2
    total = sum(float((lo * m).sum()) for lo, m in zip(losses, masks, strict=True))
    assert float(ddp) == pytest.approx(total / n_global)
    # bnpo: each rank's own token mean, then the DDP average: ranks weigh equally, tokens do not
    bnpo = sum(float((lo * m).sum() / m.sum()) for lo, m in zip(losses, masks, strict=True)) / 2
    assert abs(bnpo - total / n_global) > 1e-6


@pytest.mark.parametrize("mode", rl.mode_names())
def test_gradient_weights_equal_autograd_at_ratio_one(mode):
    mask = rl.response_mask([4, 1, 7])
    adv = torch.tensor([1.5, -0.5, -2.0], dtype=torch.float64)
    old = torch.randn(mask.shape, dtype=torch.float64)
    logp = old.clone().requires_grad_(True)
    rl.policy_loss(logp, old, adv, mask, mode, max_length=10).backward()
    expected = rl.gradient_weights(mask, adv, mode, max_length=10)
    torch.testing.assert_close(logp.grad, expected, rtol=0, atol=1e-15)


def test_per_sample_mean_punishes_long_wrong_answers_less_per_token():
    mask = rl.response_mask([20, 200, 20, 200])
    adv = [1.0, 1.0, -1.0, -1.0]
    grpo = rl.sample_push(mask, adv, "trl:grpo")
    dapo = rl.sample_push(mask, adv, "trl:dapo")
    drg = rl.sample_push(mask, adv, "trl:dr_grpo", max_length=256)
    # per-sample mean: a token of the long answers weighs 20/200 of a token of the short ones
    assert grpo["per_token"][3] == pytest.approx(grpo["per_token"][2] / 10)
    assert grpo["per_token"][1] == pytest.approx(grpo["per_token"][0] / 10)
    assert torch.allclose(grpo["total"], torch.full((4,), 0.25, dtype=torch.float64))
    # token-level (DAPO) and constant (Dr. GRPO): every token weighs the same
    assert torch.allclose(dapo["per_token"], torch.full((4,), 1 / 440, dtype=torch.float64))
    assert torch.allclose(drg["per_token"], torch.full((4,), 1 / (4 * 256), dtype=torch.float64))
    assert dapo["total"][3] == pytest.approx(10 * dapo["total"][2])
    g = rl.gradient_weights(mask, adv, "trl:grpo")
    assert (
        g[0, 0] < 0 < g[2, 0]
    )  # descent raises the good answer's log-probs, lowers the wrong one's


def test_response_mask_and_advantages_are_checked():
    assert rl.response_mask([2, 3], max_length=5).shape == (2, 5)
    with pytest.raises(ValueError):
        rl.response_mask([2, -1])
    with pytest.raises(ValueError):
        rl.response_mask([4], max_length=3)
    with pytest.raises(ValueError):
        rl.response_mask([])
    with pytest.raises(ValueError):
        rl.gradient_weights(rl.response_mask([2, 3]), [1.0], "trl:grpo")


def test_token_sum_norm_is_registered_once_and_validates():
    assert "token_sum_norm" in lv.REDUCTIONS
    w = lv.weights(rl.response_mask([2, 2]), "token_sum_norm", max_length=4)
    assert float(w.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        lv.weights(rl.response_mask([2]), "token_sum_norm", max_length=0)


def test_exported_from_the_package():
    assert lv.rl is rl and lv.precision.MAX_TOKENS == 2**22
    assert {"rl", "precision"} <= set(lv.__all__)


def test_loss_reduction_posts_token_level_formula_has_an_extra_one_over_m():
    """Jun's *Loss Reduction* (2024): 1/m * sum / (n_1 + .. + n_m); DAPO: sum / (n_1 + .. + n_m)."""
    mask = rl.response_mask([20, 200, 20, 200])
    losses = torch.rand(mask.shape, dtype=torch.float64) * mask
    token_mean = float((rl.mode_weights(mask, "trl:dapo") * losses).sum())
    post_form = float(losses.sum() / mask.sum()) / mask.shape[0]
    assert token_mean == pytest.approx(4 * post_form)


# --- the RL primer's pieces (notebook 08b): advantages, the clip factor, the per-token push ---


def test_group_advantages_by_hand_and_their_sum_is_zero():
    rewards = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # two groups of G = 4
    a = rl.group_advantages(rewards, 4)
    assert a.tolist() == [0.5, 0.5, -0.5, -0.5, 0.75, -0.25, -0.25, -0.25]
    assert a.view(2, 4).sum(dim=1).abs().max() < 1e-15  # every group's advantages sum to 0
    unbiased = rl.group_advantages(rewards[:4], 4, std="unbiased")  # std = sqrt(1/3)
    biased = rl.group_advantages(rewards[:4], 4, std="biased")  # std = 1/2
    assert unbiased[0] == pytest.approx(0.5 / (3**-0.5 + 1e-4), abs=1e-12)
    assert round(float(unbiased[0]), 4) == 0.8659  # notebook 14's A/std
    assert biased[0] == pytest.approx(0.5 / (0.5 + 1e-4), abs=1e-12)
    # equal rewards: no signal, A = 0 even without eps (no 0/0)
    assert rl.group_advantages([1.0, 1.0, 1.0], 3, std="biased", eps=0.0).tolist() == [0, 0, 0]


def test_group_advantages_match_trl_and_the_rl_experiment():
    from trl.trainer.utils import nanstd

    from lossviz.experiments.rl_training import group_advantages as experiment_advantages

    torch.manual_seed(0)
    rewards = torch.rand(24, dtype=torch.float64)
    grouped = rewards.view(-1, 8)
    std = nanstd(grouped, dim=1).repeat_interleave(8)  # TRL 1.16 scale_rewards="group"
    trl = (rewards - grouped.mean(dim=1).repeat_interleave(8)) / (std + 1e-4)
    ours = rl.group_advantages(rewards, 8, std="unbiased")
    # TRL's Bessel factor count / (count - 1) is a float32 division: agreement to ~1e-8, not 1e-15
    assert torch.allclose(ours, trl, atol=1e-6, rtol=0)
    biased = rl.group_advantages(rewards, 8, std="biased")
    assert not torch.allclose(biased, trl, atol=1e-3, rtol=0)  # TRL's std is not the biased one
    assert torch.allclose(ours, experiment_advantages(rewards, 8, std=True), atol=1e-12, rtol=0)


def test_group_advantages_refuse_bad_input():
    with pytest.raises(ValueError, match="multiple of group_size"):
        rl.group_advantages([1.0, 0.0, 1.0], 2)
    with pytest.raises(ValueError, match="std must be one of"):
        rl.group_advantages([1.0, 0.0], 2, std="sample")
    with pytest.raises(ValueError, match="finite"):
        rl.group_advantages([1.0, float("nan")], 2)
    with pytest.raises(ValueError, match="group_size"):
        rl.group_advantages([1.0], 1)


def test_clip_factor_zeroes_the_tokens_the_clip_holds_flat():
    r = torch.tensor([[0.7, 1.0, 1.1, 1.3], [0.7, 1.0, 1.1, 1.3]], dtype=torch.float64)
    g = rl.clip_factor(r, [1.0, -1.0])
    # A > 0: only r above 1 + eps is cut; A < 0: only r below 1 - eps
    assert g.tolist() == [[0.7, 1.0, 1.1, 0.0], [0.0, 1.0, 1.1, 1.3]]
    assert rl.clip_factor(r, [1.0, -1.0], epsilon_high=0.4)[0, 3] == pytest.approx(1.3)
    with pytest.raises(ValueError, match="one value per response"):
        rl.clip_factor(r, [1.0])


def test_clip_factor_is_trls_gate_of_the_clipped_loss_types():
    from lossviz.rl_ratio import gate

    torch.manual_seed(1)
    log_ratio = torch.randn(4, 6, dtype=torch.float64) * 0.4
    adv = torch.tensor([1.0, -0.5, 0.8, -1.3], dtype=torch.float64)
    mask = torch.ones(4, 6, dtype=torch.float64)
    for high in (None, 0.28):
        ours = rl.clip_factor(log_ratio.exp(), adv, epsilon=0.2, epsilon_high=high)
        assert torch.equal(ours, gate("trl:dapo", log_ratio, adv, mask, epsilon_high=high))


@pytest.mark.parametrize("mode", ["trl:grpo", "trl:dapo", "trl:dr_grpo"])
def test_token_push_is_minus_the_gradient_of_the_clipped_loss(mode):
    from lossviz.experiments.rl_training import clipped_token_loss

    torch.manual_seed(2)
    mask = rl.response_mask([2, 5, 3, 4])
    adv = torch.tensor([0.75, -0.25, 0.75, -0.25], dtype=torch.float64)
    old = torch.randn(mask.shape, dtype=torch.float64)
    logp = (old + 0.3 * torch.randn(mask.shape, dtype=torch.float64)).requires_grad_(True)
    w = rl.mode_weights(mask, mode, max_length=8)
    (w * clipped_token_loss(logp, old, adv, 0.2)).sum().backward()
    g = rl.clip_factor((logp - old).detach().exp(), adv)
    push = rl.token_push(w, adv, g)
    assert torch.allclose(push, -logp.grad, atol=1e-15, rtol=0)
    assert bool(((push > 0) == ((adv.unsqueeze(1) > 0) & (w * g > 0))).all())  # A > 0: up
    # on policy (g = 1) the push is A·W: gradient_weights with the sign flipped
    on = rl.token_push(w, adv)
    assert torch.equal(on, -rl.gradient_weights(mask, adv, mode, max_length=8) + 0.0)
    with pytest.raises(ValueError, match="shape"):
        rl.token_push(w, adv, g[:, :2])
