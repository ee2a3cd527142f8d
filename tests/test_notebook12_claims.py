"""The numbers notebook 12 states, recomputed through the package (real Trainer, SFTTrainer and
GRPOTrainer where the notebook runs them; the cached version table where it reads it)."""

import math

import pytest
import torch

pytest.importorskip("trl")  # the trainers extra; `make test` installs it

import lossviz as lv  # noqa: E402
from lossviz import evaluation, step_shape, tensor_parallel  # noqa: E402
from lossviz.trainers.versions import load_table  # noqa: E402

LENGTHS = [3, 7, 20, 5]


def test_the_hand_example():
    plan = step_shape.trainer_dealing(4, per_device_batch_size=2, ga_steps=2)
    mask = lv.batching.mask_from_lengths(LENGTHS).double()
    W = lv.plan_weights(mask, plan, normalize="global")
    assert round(1 / float(W[0, 0])) == 35 and float(W.sum()) == pytest.approx(1.0)
    U = lv.plan_weights(mask, plan, normalize="unscaled")
    assert round(1 / float(U[0, 0])) == 10 and float(U.sum()) == pytest.approx(2.0)
    assert f"{35 / 39:.3f}" == "0.897"


def test_pitfall_2_and_4_read_from_the_cached_version_table():
    rows = {r["version"]: r for r in load_table()["rows"]}
    inv = {v: [round(1 / w) for w in rows[v]["ranks"]["weights"][:2]] for v in rows}
    assert (
        inv["4.46.0"] == [108, 702] and inv["4.53.3"] == [116, 710] and inv["5.24.0"] == [405] * 2
    )
    assert sum([12, 7, 5, 30]) == 54 and sum([40, 300, 9, 2]) == 351
    assert round(702 / 108, 1) == 6.5
    assert 116 == 2 * (54 + 4) and 710 == 2 * (351 + 4)  # + one untrained label per row
    assert rows["4.53.3"]["ranks"]["average_tokens_across_devices"] is False
    assert rows["4.54.0"]["ranks"]["average_tokens_across_devices"] is True
    assert rows["4.46.0"]["ranks"]["average_tokens_across_devices"] is None
    assert rows["5.24.0"]["ranks"]["model"] == "global"
    for v, one_over_w, model in (("5.9.0", 39, "global_overcount"), ("5.11.0", 35, "global")):
        cell = rows[v]["ga"]
        assert round(1 / cell["weights"][0]) == one_over_w and cell["model"] == model
    assert f"{sum(rows['5.9.0']['ga']['shares']):.3f}" == "0.897"
    over = [v for v, r in rows.items() if r["status"] == "measured" and r["overcount"]]
    assert over[0] == "4.48.3" and over[-1] == "5.9.0"


def test_pitfall_3_factors():
    assert tensor_parallel.parallel_loss_factor(2, 4, count_divisor=4, multiplier=8) == 4.0
    assert tensor_parallel.parallel_loss_factor(2, 4, count_divisor=4, multiplier=2) == 1.0
    assert tensor_parallel.parallel_loss_factor(2, 1, 2, count_divisor=2, multiplier=4) == 2.0
    assert f"{47.88 / 11.97:.2f}" == "4.00"  # the numbers PR 45994 reports


def test_pitfall_5_grpo_loss_is_zero_and_its_gradient_is_not():
    from lossviz.trainers.trl_grpo import GRPOMeter

    with GRPOMeter() as meter:
        g = meter.measure("grpo", [2, 5, 3], advantages=[1.0, -0.5, -0.5])
        d = meter.measure("dapo", [2, 5, 3], advantages=[1.0, -0.5, -0.5])
    assert abs(g.loss) < 1e-6  # float32 sums of +-0.5 and 1: printed as +0.000
    w = [float(-g.grad[b, 0]) for b in range(3)]
    assert w == pytest.approx([1 / 6, -1 / 30, -1 / 18], abs=1e-7)  # float32 gradient of 1/18
    A = [1.0, -0.5, -0.5]
    W = [x / a for x, a in zip(w, A, strict=True)]  # the non-negative weight: push / A
    assert W == pytest.approx([1 / 6, 1 / 15, 1 / 9], abs=1e-6)
    assert [f"{x:.4f}" for x in W] == ["0.1667", "0.0667", "0.1111"]
    assert d.loss == pytest.approx(-(2 * 1 - 5 * 0.5 - 3 * 0.5) / 10, abs=1e-6)
    dw = [float(-d.grad[b, 0]) / a for b, a in zip(range(3), A, strict=True)]
    assert [float(-d.grad[b, 0]) for b in range(3)] == pytest.approx([0.1, -0.05, -0.05], abs=1e-7)
    assert dw == pytest.approx([0.1] * 3, abs=1e-6)


CHAT = [{"role": "user", "content": "the cat sat"}, {"role": "assistant", "content": "then it ran"}]


def test_pitfall_6_and_7_with_the_real_sft_trainer(capsys):
    from lossviz.trainers.tiny import CHATML_TRAINING_TEMPLATE
    from lossviz.trainers.trl_sft import SFTMeter

    sft = SFTMeter()
    with pytest.raises(ValueError, match="^The chat template is not training-compatible"):
        sft.run([{"messages": CHAT}], assistant_only_loss=True)
    step = sft.run([{"messages": CHAT}], CHATML_TRAINING_TEMPLATE, assistant_only_loss=True)
    trained = step.input_ids[0][step.trained[0]]
    assert sft.tokens(trained) == ["then", "it", "ran", "<|im_end|>"]
    assert [round(1 / float(x)) for x in step.W[0][step.trained[0]]] == [4] * 4
    text = [{"text": "the cat sat on a mat"}, {"text": "and then it ran"}]
    padded, packed = sft.run(text), sft.run(text, packing=True)
    starts = (packed.position_ids[0] == 0).nonzero().flatten().tolist()
    pieces = torch.tensor_split(packed.W[0], starts[1:])
    assert [round(float(r.sum()), 3) for r in padded.W] == [0.6, 0.4]
    assert [round(float(p.sum()), 3) for p in pieces] == [0.6, 0.4]
    assert not packed.trained[0][starts].any()
    assert capsys.readouterr().out == ""  # the Trainer's metrics are not printed into the notebook


def test_pitfall_7_mean_of_means_in_packed_rows():
    batch = lv.batching.pack([[5] * 3, [6] * 7, [7] * 20, [8] * 5], row_length=32)
    m, ids = batch.loss_mask(), batch.loss_sample_ids()
    per_sample = lv.weights(m, "sample_mean", sample_ids=ids)
    per_row = lv.weights(m, "sample_mean")
    assert [round(float(per_sample[ids == b].sum()), 3) for b in range(4)] == [0.25] * 4
    assert [round(float(per_row[ids == b].sum()), 3) for b in range(4)] == [
        0.037,
        0.111,
        0.352,
        0.5,
    ]
    assert batch.sample_ids[0].max() == 2 and set(batch.sample_ids[1].tolist()) == {3, -1}


def _edge_distance(x: float) -> float:
    """How far ``x`` is from the nearest rounding edge (k + 0.5), in units of its last digit."""
    return abs(x - math.floor(x) - 0.5)


def test_pitfall_8_trainer_evaluate_source_lines():
    import inspect

    from transformers import Trainer

    src = [x.strip() for x in inspect.getsource(Trainer.evaluation_loop).splitlines()]
    assert "batch_size = self.args.eval_batch_size" in src
    assert "losses = self.gather_function(losses.repeat(batch_size))" in src
    assert 'metrics[f"{metric_key_prefix}_loss"] = losses.mean().item()' in src


def test_pitfall_8_the_three_rules_by_hand():
    """Token, batch and sample rules on three batches: the formulas the notebook's table gives."""
    batches = [torch.tensor([1.0, 3.0]), torch.tensor([2.0]), torch.tensor([4.0, 4.0, 4.0, 4.0])]
    sizes = [2, 1, 1]
    means, n = [2.0, 2.0, 4.0], [2, 1, 4]
    token = evaluation.eval_loss(batches, weighting="token")
    batch = evaluation.eval_loss(batches, weighting="batch")
    sample = evaluation.eval_loss(batches, weighting="sample", sizes=sizes)
    assert token == pytest.approx((4 + 2 + 16) / 7)
    assert batch == pytest.approx(sum(means) / 3)
    assert sample == pytest.approx(sum(s * m for s, m in zip(sizes, means, strict=True)) / 4)
    gap = sum((s / 4 - k / 7) * m for s, k, m in zip(sizes, n, means, strict=True))
    assert sample - token == pytest.approx(gap)  # the gap formula of the notebook


def test_pitfall_8_trainer_evaluate_is_the_sample_rule():
    from lossviz.trainers.hf_eval import measure_eval

    ev = measure_eval([2, 30, 3, 5, 40], batch_size=2, logit_scale=30)
    assert ev["sizes"] == [2, 2, 1]
    loss = {
        w: evaluation.eval_loss(ev["batch_losses"], weighting=w, sizes=ev["sizes"])
        for w in evaluation.EVAL_WEIGHTINGS
    }
    # float32 forward of the Trainer vs float64 scoring of the same model: seen 3e-7
    assert abs(ev["eval_loss"] - loss["sample"]) < 1e-5
    # printed to 3 decimals, perplexities to tens: each value sits > 3e-5 (> 1 in perplexity) from a
    # rounding edge, while float32 kernels move it by ~1e-6 (~0.002 in perplexity)
    for value, text in (
        (ev["eval_loss"], "7.155"),
        (loss["batch"], "7.035"),
        (loss["token"], "6.871"),
    ):
        assert f"{value:.3f}" == text and _edge_distance(value * 1e3) > 0.03
    for value, text in (
        (ev["eval_loss"], "1280"),
        (loss["sample"], "1280"),
        (loss["token"], "960"),
    ):
        ppl = math.exp(value) / 10
        assert f"{round(ppl) * 10}" == text and _edge_distance(ppl) > 0.1
    assert round(math.exp(ev["eval_loss"] - loss["token"]), 2) == 1.33  # "a third too high"
    # the per-batch lines: s_e, n_e, mean loss to 2 decimals, shares to 2 decimals
    n = [len(x) for x in ev["batch_losses"]]
    assert n == [32, 8, 40]
    means = [float(x.mean()) for x in ev["batch_losses"]]
    assert [f"{m:.2f}" for m in means] == ["7.29", "7.38", "6.44"]
    assert all(_edge_distance(m * 1e2) > 0.05 for m in means)  # > 5e-4 from an edge; spread ~1e-6
    assert [f"{k / 80:.2f}" for k in n] == ["0.40", "0.10", "0.50"]
    assert [f"{s / 5:.2f}" for s in ev["sizes"]] == ["0.40", "0.40", "0.20"]
    sample_shares = [s / 5 for s in ev["sizes"]]
    gap = sum((s - k / 80) * m for s, k, m in zip(sample_shares, n, means, strict=True))
    assert loss["sample"] - loss["token"] == pytest.approx(gap, abs=1e-9)
    # the untrained head: the same evaluation, the perplexity under 1% too high (printed 0.7%)
    ev1 = measure_eval([2, 30, 3, 5, 40], batch_size=2, logit_scale=1)
    token_rule = float(torch.cat(ev1["batch_losses"]).mean())
    rel = math.exp(ev1["eval_loss"] - token_rule) - 1
    assert 0.0 < rel < 0.01 and f"{rel:.1%}" == "0.7%" and _edge_distance(rel * 1e3) > 0.05
    assert f"{ev1['eval_loss']:.3f}" == "4.173" and _edge_distance(ev1["eval_loss"] * 1e3) > 0.03
    assert f"{token_rule:.3f}" == "4.165" and _edge_distance(token_rule * 1e3) > 0.03
