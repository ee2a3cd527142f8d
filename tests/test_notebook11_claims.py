"""The numbers notebook 11 states, recomputed through the package."""

import pytest
import torch
from torch.nn import functional as F

import lossviz as lv
from lossviz.model import TinyCausalLM, TinyConfig
from lossviz.step_gradients import token_batch
from lossviz.trainers.versions import load_table

LENGTHS = [3, 7, 20, 5]
TOL = 1e-6  # weights read off float32 gradients: ~6e-8 relative


def test_one_token_by_hand():
    z = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    (0.25 * F.cross_entropy(z[None], torch.tensor([0]))).backward()
    p = torch.softmax(z.detach(), -1)
    assert [round(v, 4) for v in p.tolist()] == [0.6285, 0.1402, 0.2312]
    assert [round(v, 4) for v in z.grad.tolist()] == [-0.0929, 0.0351, 0.0578]
    W, res = lv.recover_weights(z.detach(), torch.tensor(0), z.grad)
    assert round(float(W), 6) == 0.25 and float(res) < 1e-12
    z.grad = None
    F.cross_entropy(z[None], torch.tensor([0]), label_smoothing=0.1).backward()
    _, res_ls = lv.recover_weights(z.detach(), torch.tensor(0), z.grad)
    # printed to 2 decimals: the value sits far from a rounding edge (float64, one rounding)
    assert 0.026 < float(res_ls) < 0.034 and round(float(res_ls), 2) == 0.03


def test_the_version_table_says_what_the_notebook_says():
    rows = {r["version"]: r for r in load_table()["rows"]}
    assert rows["4.45.2"]["ga"]["model"] == "naive"
    assert rows["4.46.0"]["ga"]["model"] == "global" and rows["4.46.0"]["ranks"]["model"] == "local"
    over = [v for v, r in rows.items() if r["status"] == "measured" and r["overcount"]]
    assert over == ["4.48.3", "4.51.3", "4.53.3", "4.54.0", "5.9.0"]  # fixed in 5.11
    assert rows["4.54.0"]["ranks"]["average_tokens_across_devices"] is True
    assert rows["4.53.3"]["ranks"]["average_tokens_across_devices"] is False
    assert {rows[v]["compute_loss"]["model"] for v in rows if v != "4.45.2"} == {"unscaled"}
    assert rows["4.45.2"]["compute_loss"]["model"] == "naive"
    assert rows["4.54.0"]["ranks"]["model"] == "global_overcount"  # the default became True in 4.54


def test_two_real_processes_give_the_global_token_mean():
    ranks = {r["version"]: r for r in load_table()["rows"]}["5.24.0"]["ranks"]
    assert ranks["plan"] == [[[0], [2], [4], [6]], [[1], [3], [5], [7]]]
    assert ranks["average_tokens_across_devices"] is True and ranks["model"] == "global"
    assert [round(1 / w) for w in ranks["weights"]] == [405] * 8
    lengths = [12, 40, 7, 300, 5, 9, 30, 2]
    assert sum(lengths[0::2]) == 54 and sum(lengths[1::2]) == 351


def test_the_flag_that_decides_the_division_by_k():
    """The lines notebook 11 prints from the installed Trainer, and what the flag does in a real step."""
    import inspect

    from transformers import Trainer

    src = inspect.getsource(Trainer.training_step)
    assert "if self.loss_is_scaled_for_ga is not None:" in src
    assert "self.model_accepts_loss_kwargs and num_items_in_batch is not None" in src
    assert "loss = loss / self.current_gradient_accumulation_steps" in src
    assert Trainer.loss_is_scaled_for_ga is None


def test_the_two_setups_that_lose_the_count_with_the_real_trainer():
    from lossviz.trainers.hf_trainer import measure_runs

    runs = [{"case": c} for c in ("ga", "naive", "compute_loss")]
    inv = {}
    for K in (2, 4):
        res = measure_runs(LENGTHS, runs, per_device_batch_size=4 // K, ga_steps=K)
        totals = [sum(map(sum, r["measured"])) for r in res]
        assert totals == pytest.approx([1.0, 1.0, float(K)], abs=TOL)
        assert [r["matches"][0] for r in res] == ["global", "naive", "unscaled"]
        inv[K] = [[round(1 / row[0]) for row in r["measured"]] for r in res]
    assert inv[2] == [[35] * 4, [20, 20, 50, 50], [10, 10, 25, 25]]
    assert inv[4] == [[35] * 4, [12, 28, 80, 20], [3, 7, 20, 5]]  # K = 4, B = 1: each sample 1/4


def test_loss_is_scaled_for_ga_false_restores_the_division(monkeypatch):
    """The fix notebook 11 names: the override with the flag set gives the mean of means, total 1."""
    from transformers import Trainer

    from lossviz.trainers.hf_trainer import measure

    monkeypatch.setattr(Trainer, "loss_is_scaled_for_ga", False)
    r = measure(LENGTHS, per_device_batch_size=2, ga_steps=2, case="compute_loss")
    assert sum(map(sum, r["measured"])) == pytest.approx(1.0, abs=TOL)
    assert "naive" in r["matches"]


def test_probing_a_sample_mean_loop():
    batch, model = token_batch([3, 7, 20, 5]), TinyCausalLM(TinyConfig())
    with lv.probe(model) as rec:
        lv.cross_entropy(model(batch.input_ids), batch.labels, "sample_mean", shift=True).backward()
    W = rec.W(0)
    assert [round(1 / float(row[row > 0][0])) for row in W] == [12, 28, 80, 20]
    expected = lv.weights((batch.labels != -100).double(), "sample_mean")
    assert float((W - expected).abs().max()) < 1e-6  # float32 recovery, ~6e-8 relative
    assert rec.is_cross_entropy()
