"""Every number the RL primer (notebook 08b) states, recomputed through the package."""

import copy

import pytest
import torch

from lossviz import rl
from lossviz.experiments import rl_primer
from lossviz.experiments.rl_training import RLConfig, clipped_token_loss


@pytest.fixture(scope="module")
def group():
    return rl_primer.sample_group(8)


@pytest.fixture(scope="module")
def steps(group):
    """The notebook's four AdamW steps on one group: ratios and clip factors per step."""
    cfg = RLConfig()
    mask = rl.response_mask(group.lengths.tolist())
    adv = rl.group_advantages(group.rewards, 8)
    w = rl.mode_weights(mask, "trl:grpo")
    policy = copy.deepcopy(group.policy)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    with torch.no_grad():
        old = rl_primer.answer_logp(policy, group)
    ratios, factors = [], []
    for _ in range(4):
        logp = rl_primer.answer_logp(policy, group)
        r = torch.exp(logp - old).detach()
        ratios.append(r)
        factors.append(rl.clip_factor(r, adv, epsilon=cfg.clip))
        opt.zero_grad()
        (w * clipped_token_loss(logp, old, adv.float(), cfg.clip)).sum().backward()
        opt.step()
    return mask, adv, w, ratios, factors


def test_the_group(group):
    assert group.lengths.tolist() == [4, 4, 5, 4, 4, 6, 4, 7]
    assert group.rewards.tolist() == [0, 1, 0, 0, 0, 0, 1, 0]
    assert group.answers[1] == ["c", "a", "a", "</s>"] == group.answers[6]
    assert [group.answers[b][:2] for b in (0, 7)] == [["c", "a"]] * 2
    assert [group.answers[b][0] for b in (2, 3)] == ["c", "c"]


def test_advantages_and_stds(group):
    r = group.rewards
    printed = {"none": ("+0.7500", "-0.2500"), "unbiased": ("+1.6198", "-0.5399")}
    printed["biased"] = ("+1.7317", "-0.5772")
    for std, (right, wrong) in printed.items():
        a = rl.group_advantages(r, 8, std=std)
        assert (f"{float(a[1]):+.4f}", f"{float(a[0]):+.4f}") == (right, wrong)
        assert abs(float(a.sum())) < 1e-12
    assert f"{float(r.std()):.4f}" == "0.4629" and f"{float(r.std(correction=0)):.4f}" == "0.4330"


def test_ratios_clip_counts_and_push(steps):
    mask, adv, w, ratios, factors = steps
    keep = mask.bool()
    right, wrong = keep & (adv.unsqueeze(1) > 0), keep & (adv.unsqueeze(1) < 0)
    assert (int(right.sum()), int(wrong.sum())) == (8, 30)
    assert float((ratios[0][keep] - 1).abs().max()) < 1e-6
    spans = [
        tuple(f"{float(f(r[m])):.2f}" for m in (right, wrong) for f in (torch.min, torch.max))
        for r in ratios
    ]
    assert spans == [
        ("1.00", "1.00", "1.00", "1.00"),
        ("1.02", "1.35", "0.35", "1.35"),
        ("1.03", "1.39", "0.21", "1.39"),
        ("1.04", "1.36", "0.13", "1.37"),
    ]
    clipped = [(int((right & (g == 0)).sum()), int((wrong & (g == 0)).sum())) for g in factors]
    assert clipped == [(0, 0), (2, 14), (2, 14), (2, 15)]
    for r in ratios[1:]:  # no token within 1e-3 of an edge: the counts hold on any machine
        assert float(torch.minimum((r[keep] - 1.2).abs(), (r[keep] - 0.8).abs()).min()) > 1e-3
    on = {m: rl.token_push(rl.mode_weights(mask, m), adv) for m in ("trl:grpo", "trl:dapo")}
    assert [f"{float(on['trl:grpo'][b, 0]):+.5f}" for b in (0, 7)] == ["-0.00781", "-0.00446"]
    assert [f"{float(on['trl:dapo'][b, 0]):+.5f}" for b in (0, 7)] == ["-0.00658", "-0.00658"]
    assert float(mask.sum()) == 38
