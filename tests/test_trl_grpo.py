"""TRL 1.16.0's GRPOTrainer measured: every loss_type's per-token gradient equals lossviz's prediction.

The measurement is the gradient of ``GRPOTrainer._compute_loss`` (TRL's own code, a tiny Qwen2 built from
a config) with respect to each completion token's log-prob; the prediction is
``-A_b * W[b, t] * gate[b, t]`` from :mod:`lossviz.rl` and :mod:`lossviz.rl_ratio`. TRL computes in
float32: over these batches measured and predicted differ by at most 4e-8 (about 3 float32 roundings of
weights up to 0.5), so 1e-6 leaves a 25x margin on any CPU kernel.
"""

import pytest
import torch

from lossviz import rl, rl_ratio
from lossviz.trainers.trl_grpo import TRL_LOSS_TYPES, GRPOMeter, trl_version

TOL = 1e-6  # float32 loss; measured spread <= 4e-8 (see the module docstring)
LENGTHS = [2, 5, 3, 7]
ADV = torch.tensor([1.0, -0.5, 0.8, -1.3], dtype=torch.float64)  # sums to 0, as group advantages do


@pytest.fixture(scope="module")
def meter():
    with GRPOMeter(max_completion_length=8) as m:
        yield m


def off_policy_log_ratio():
    """Log-ratios whose clip, gate and sequence ratios act: +-0.5 on alternating tokens, one long shift."""
    lr = torch.tensor([[0.5, -0.5] * 4] * 4)[:, :7]
    lr[3] = (
        0.4  # response 3 (A < 0) drifts up as a whole: GSPO's sequence ratio leaves the clip range
    )
    lr[2] = -0.4  # response 2 (A > 0) drifts down: inside the clip for A > 0, so it keeps r
    return lr


def predicted(out, loss_type, **kw):
    counts = {"max_length": 8}
    counts.update({k: kw.pop(k) for k in ("ga_steps", "steps_per_generation") if k in kw})
    if "num_items_in_batch" in kw:
        counts["global_tokens"] = kw.pop("num_items_in_batch")
    return rl_ratio.policy_gradient(
        out.mask, ADV, f"trl:{loss_type}", out.log_ratio, counts=counts, **kw
    )


def test_pinned_version():
    assert trl_version() == "1.16.0"


@pytest.mark.parametrize("loss_type", TRL_LOSS_TYPES)
def test_every_loss_type_on_and_off_policy(meter, loss_type):
    on = meter.measure(loss_type, LENGTHS, ADV)
    torch.testing.assert_close(on.grad, predicted(on, loss_type), rtol=0, atol=TOL)
    # on policy the gate is 1 (cispo: min(1, epsilon_high)): the gradient is -A * W
    w = rl.mode_weights(on.mask, f"trl:{loss_type}", max_length=8)
    scale = 0.2 if loss_type == "cispo" else 1.0
    torch.testing.assert_close(on.grad, -ADV[:, None] * w * scale, rtol=0, atol=TOL)
    off = meter.measure(loss_type, LENGTHS, ADV, log_ratio=off_policy_log_ratio())
    torch.testing.assert_close(off.grad, predicted(off, loss_type), rtol=0, atol=TOL)
    change = (off.grad - on.grad).abs().max()
    if (
        loss_type == "cispo"
    ):  # min(r, 0.2) is 0.2 for every r here: the default gate ignores the ratio
        assert change < TOL
    else:
        assert change > 1e-3


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "gspo"])
def test_clipping_zeroes_what_it_should(meter, loss_type):
    out = meter.measure(loss_type, LENGTHS, ADV, log_ratio=off_policy_log_ratio())
    dead = (out.grad == 0) & (out.mask > 0)
    pred = predicted(out, loss_type)
    assert torch.equal(dead, (pred == 0) & (out.mask > 0))
    if loss_type == "gspo":  # the whole of response 3 (A < 0, sequence ratio e^0.4 > 1.2) is kept
        assert not dead[3, :7].any() and dead.sum() == 0
    else:  # A > 0 with r = e^0.5 > 1.2, A < 0 with r = e^-0.5 < 0.8
        assert dead.sum() > 0


def test_cispo_default_epsilon_high_scales_the_on_policy_gradient_by_0_2(meter):
    """epsilon_high defaults to epsilon = 0.2; the ScaleRL paper's 5.0 must be set by hand."""
    default = meter.measure("cispo", LENGTHS, ADV)
    recommended = meter.measure("cispo", LENGTHS, ADV, epsilon_high=5.0)
    dapo = meter.measure("dapo", LENGTHS, ADV)
    torch.testing.assert_close(default.grad, 0.2 * dapo.grad, rtol=0, atol=TOL)
    torch.testing.assert_close(recommended.grad, dapo.grad, rtol=0, atol=TOL)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "sapo", "luspo"])
def test_step_normalised_types_divide_by_accumulation_steps(meter, loss_type):
    one = meter.measure(loss_type, LENGTHS, ADV)
    four = meter.measure(loss_type, LENGTHS, ADV, ga_steps=4)
    torch.testing.assert_close(four.grad, one.grad / 4, rtol=0, atol=TOL)


def test_dapo_over_accumulation_is_the_generation_batch_token_mean(meter):
    """Two micro-batches of one generation batch (G = steps_per_generation = 2): summed, 1/N_gen each."""
    halves = ([2, 5], [3, 7])
    n_gen = sum(LENGTHS)
    grads = [
        meter.measure("dapo", lens, ADV[2 * i : 2 * i + 2], ga_steps=2, num_items_in_batch=n_gen)
        for i, lens in enumerate(halves)
    ]
    for i, g in enumerate(grads):
        expect = -ADV[2 * i : 2 * i + 2, None] * g.mask / n_gen
        torch.testing.assert_close(g.grad, expect, rtol=0, atol=TOL)
    # steps_per_generation = 1 with G = 2 (a new generation every micro-batch): normaliser N_gen / 2
    g = meter.measure(
        "dapo", [2, 5], ADV[:2], ga_steps=2, steps_per_generation=1, num_items_in_batch=7
    )
    torch.testing.assert_close(g.grad, -ADV[:2, None] * g.mask / 14, rtol=0, atol=TOL)


def test_grpo_loss_is_zero_but_the_gradient_is_not(meter):
    """TRL issue 2703: on policy the loss is -mean_b(A_b) = 0 for group advantages; -A_b * W is not."""
    out = meter.measure("grpo", LENGTHS, ADV)
    assert abs(out.loss) < 1e-6  # 0 up to float32 rounding of the four sample means
    # each response gets |A_b| / B in total: 3.6 / 4 = 0.9, far from 0
    assert float(out.grad.abs().sum()) == pytest.approx(float(ADV.abs().sum()) / 4, abs=TOL)


def test_the_notebook_table_has_every_loss_type_within_tolerance(meter):
    from lossviz.trainers.trl_grpo import measured_table

    rows = measured_table(meter, LENGTHS, ADV, off_policy_log_ratio())
    assert [r["setting"].split("=")[1].split(",")[0] for r in rows] == [
        *TRL_LOSS_TYPES[:-1],
        "grpo",
    ]
    assert all(r["on_policy_error"] < TOL and r["off_policy_error"] < TOL for r in rows)
    assert all(r["W"] and r["gate"] and r["reduction"] for r in rows)
