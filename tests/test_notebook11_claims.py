"""The numbers notebook 11 states, recomputed through the package."""

import torch
from torch.nn import functional as F

import lossviz as lv
from lossviz.model import TinyCausalLM, TinyConfig
from lossviz.step_gradients import token_batch
from lossviz.trainers.versions import load_table


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


def test_probing_a_sample_mean_loop():
    batch, model = token_batch([3, 7, 20, 5]), TinyCausalLM(TinyConfig())
    with lv.probe(model) as rec:
        lv.cross_entropy(model(batch.input_ids), batch.labels, "sample_mean", shift=True).backward()
    W = rec.W(0)
    assert [round(1 / float(row[row > 0][0])) for row in W] == [12, 28, 80, 20]
    expected = lv.weights((batch.labels != -100).double(), "sample_mean")
    assert float((W - expected).abs().max()) < 1e-6  # float32 recovery, ~6e-8 relative
    assert rec.is_cross_entropy()
