"""verl 0.9.1's agg_loss, executed from the installed wheel's source (its module needs ray and tensordict:
see lossviz/verl_agg.py), against lossviz.rl's verl modes: values and per-token gradients.

float64 throughout; agg_loss's seq-mean-token-mean divides by ``n_b + 1e-8``, a relative change of
1e-8 / n_b, so 1e-6 bounds it with room; every other mode agrees to float64 rounding.
"""

import re
from pathlib import Path

import pytest
import torch

from lossviz import rl
from lossviz.trainers.verl_agg import VERL_LOSS_AGG_MODES, VERL_VERSION, load_agg_loss, verl_root

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-6  # seq-mean-token-mean's + 1e-8 (see the module docstring); the rest are exact


@pytest.fixture(scope="module")
def agg_loss():
    return load_agg_loss()


def test_the_makefile_installs_the_version_lossviz_measures():
    assert f"VERL_VERSION := {VERL_VERSION}" in (ROOT / "Makefile").read_text()
    assert (verl_root() / "verl" / "version" / "version").read_text().strip() == "0.9.1"


def test_every_loss_agg_mode_of_the_source_is_a_lossviz_mode():
    src = (verl_root() / "verl" / "trainer" / "ppo" / "core_algos.py").read_text()
    body = src[src.index("def agg_loss(") : src.index("def compute_policy_loss(")]
    named = set(re.findall(r'"((?:token|seq)-[a-z-]+)"', body))
    assert named == set(VERL_LOSS_AGG_MODES)
    assert {m.name for m in rl.MODES.values() if m.project == "verl"} == named


def weights_of(agg_loss, losses, mask, mode, **info):
    """Each token's weight in verl's loss: the gradient of agg_loss w.r.t. loss_mat."""
    lm = losses.clone().requires_grad_(True)
    agg_loss(lm, mask, mode, **info).backward()
    return lm.grad


CASES = [
    ([3, 9, 5], {}),  # one rank, no global info: verl's own counts
    ([4, 0, 2, 7], {}),  # an empty response: left out of B'
    ([3, 9, 5], {"dp_size": 2, "batch_num_tokens": 40, "global_batch_size": 6}),
    (
        [6, 1],
        {"dp_size": 4, "batch_num_tokens": 30, "global_batch_size": 8, "loss_scale_factor": 16},
    ),
]


@pytest.mark.parametrize("mode", VERL_LOSS_AGG_MODES)
@pytest.mark.parametrize(("lengths", "info"), CASES)
def test_agg_loss_equals_lossviz_weights(agg_loss, mode, lengths, info):
    mask = rl.response_mask(lengths, max_length=max(lengths) + 2)
    losses = torch.randn(
        mask.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7)
    )
    w = rl.mode_weights(
        mask,
        f"verl:{mode}",
        max_length=info.get("loss_scale_factor"),
        processes=info.get("dp_size", 1),
        global_tokens=info.get("batch_num_tokens"),
        global_responses=info.get("global_batch_size"),
    )
    torch.testing.assert_close(
        weights_of(agg_loss, losses, mask, mode, **info), w, rtol=0, atol=TOL
    )
    assert float(agg_loss(losses, mask, mode, **info)) == pytest.approx(
        float((w * losses).sum()), abs=TOL
    )


def test_seq_mean_token_sum_norm_divides_by_the_batch_too(agg_loss):
    """The suite said this mode "has no 1/B" (B times TRL's dr_grpo). In verl 0.9.1 it has 1/B'."""
    mask = rl.response_mask([3, 9, 5])
    losses = torch.rand(mask.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    one = float(agg_loss(losses, mask, "seq-mean-token-sum-norm"))
    twice = float(
        agg_loss(torch.cat([losses, losses]), torch.cat([mask, mask]), "seq-mean-token-sum-norm")
    )
    assert twice == pytest.approx(one, abs=1e-12)  # a sum without 1/B would double
    dr_grpo = float((rl.mode_weights(mask, "trl:dr_grpo", max_length=9) * losses).sum())
    assert one == pytest.approx(dr_grpo, abs=1e-12)  # = TRL dr_grpo with C = max_completion_length


def test_two_ranks_with_global_counts_give_the_global_means(agg_loss):
    """Each rank scales by dp_size / global count; DDP averages: the mean over all ranks' tokens."""
    masks = [rl.response_mask([3, 8]), rl.response_mask([1, 2])]
    losses = [
        torch.rand(m.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
        for i, m in enumerate(masks)
    ]
    n_all = sum(float(m.sum()) for m in masks)
    info = {"dp_size": 2, "batch_num_tokens": n_all, "global_batch_size": 4}

    def ddp_mean(mode: str) -> float:  # each rank's verl loss, then DDP's mean over the 2 ranks
        pairs = zip(losses, masks, strict=True)
        return sum(float(agg_loss(lo, m, mode, **info)) for lo, m in pairs) / 2

    total = sum(float((lo * m).sum()) for lo, m in zip(losses, masks, strict=True))
    assert ddp_mean("token-mean") == pytest.approx(total / n_all)  # all tokens of all ranks
    assert ddp_mean("seq-mean-token-sum") == pytest.approx(total / 4)  # all 4 sequences


def test_the_notebook_table_has_every_mode_within_tolerance():
    from lossviz.trainers.verl_agg import measured_table

    mask = rl.response_mask([2, 5, 0, 3])
    losses = torch.randn(
        mask.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    rows = measured_table(mask, losses)
    assert [r["setting"] for r in rows] == [f"loss_agg_mode={m}" for m in VERL_LOSS_AGG_MODES]
    assert all(r["error"] < TOL for r in rows)
