"""A vision-language model and a mixture of experts in the real transformers Trainer (5.24).

Tiny Qwen2.5-VL, Qwen2-VL and Mixtral models built from configs (nothing downloaded); every weight
is read by lv.probe from one real ``Trainer.train()`` step, the router's gradient from the
optimizer. A recovered float32 weight is off by ~6e-8 of the largest one (lossviz.probe), so 1e-6
separates the weightings; the aux coefficient is a projection of float32 gradients (~1e-7 apart).
"""

import json
import os

import pytest

pytest.importorskip("transformers")  # the trainers extra; `make test` installs it

import transformers  # noqa: E402

from lossviz.commands import main  # noqa: E402
from lossviz.trainers.moe import aux_coefficient, measure_aux, moe_rows  # noqa: E402
from lossviz.trainers.vlm import (  # noqa: E402
    declared_no_loss_kwargs,
    measure_vlm,
    trainer_counts_tokens,
    vlm_rows,
)

SHARES_NAIVE = [0.15, 0.35, 0.4, 0.1]  # lengths 3, 7 | 20, 5: each micro-batch 1/2 of the step
SHARES_GLOBAL = [3 / 35, 7 / 35, 20 / 35, 5 / 35]  # every token 1/35


def _live_children() -> list[int]:
    """Live (non-zombie) child processes of this test process, from Linux /proc."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            except OSError:
                continue
            if int(ppid) == os.getpid() and state != "Z":
                found.append(int(entry))
    return found


def test_the_trainer_reads_the_flag_of_the_class_it_is_given():
    """transformers 5.24 source: Qwen2.5-VL, Qwen3-VL, Gemma 3n and Gemma 4 declare the flag on the
    class the Trainer sees; PaliGemma, Gemma 3 and Qwen2-VL only on their inner *Model."""
    assert transformers.__version__ == "5.24.0"
    found = declared_no_loss_kwargs()
    for fam, cls in [
        ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"),
        ("qwen3_vl", "Qwen3VLForConditionalGeneration"),
        ("gemma3n", "Gemma3nForConditionalGeneration"),
        ("gemma4", "Gemma4ForConditionalGeneration"),
    ]:
        assert cls in found[fam]  # declared on the class itself: the Trainer reads False
    assert trainer_counts_tokens(transformers.Qwen2_5_VLForConditionalGeneration) == (
        False,
        "declares accepts_loss_kwargs = False",
    )
    for fam, inner, outer in [
        ("paligemma", "PaliGemmaModel", "PaliGemmaForConditionalGeneration"),
        ("gemma3", "Gemma3Model", "Gemma3ForConditionalGeneration"),
        ("qwen2_vl", "Qwen2VLModel", "Qwen2VLForConditionalGeneration"),
    ]:
        assert found[fam] == [inner]
        assert trainer_counts_tokens(getattr(transformers, outer)) == (
            True,
            "forward takes **kwargs",
        )


@pytest.fixture(scope="module")
def vlm():
    return measure_vlm()


def test_qwen2_5_vl_gets_the_mean_of_micro_batch_means(vlm):
    r = vlm["qwen2_5_vl"]
    assert r["model_accepts_loss_kwargs"] is False and r["expected"] == "naive"
    assert r["matches"] == ["naive"] and r["max_residual"] < 1e-5
    shares = r["diff"]["global"]["measured_share"]
    assert all(abs(a - b) < 1e-6 for a, b in zip(shares, SHARES_NAIVE, strict=True))


@pytest.mark.parametrize("setting", ["model_flag", "trainer_flag", "loss_func"])
def test_each_setting_restores_the_token_mean(vlm, setting):
    r = vlm[f"qwen2_5_vl+{setting}"]
    assert r["expected"] == "global" and "global" in r["matches"] and "naive" not in r["matches"]
    # the compute_loss_func path counts tokens without the model's flag
    assert r["model_accepts_loss_kwargs"] is (setting != "loss_func")
    shares = r["diff"]["global"]["measured_share"]
    assert all(abs(a - b) < 1e-6 for a, b in zip(shares, SHARES_GLOBAL, strict=True))


def test_qwen2_vl_gets_the_token_mean_as_shipped(vlm):
    r = vlm["qwen2_vl"]
    assert r["model_accepts_loss_kwargs"] is True and "global" in r["matches"]


@pytest.fixture(scope="module")
def sft():
    """TRL 1.16's SFTTrainer on the VLM and on a plain causal LM: one real step each."""
    from lossviz.trainers.vlm import measure_sft_vlm

    return {model: measure_sft_vlm(model) for model in ("vlm", "llm")}


@pytest.fixture
def measured_vlm_rows(monkeypatch, vlm, sft):
    """:func:`vlm_rows` read off the module fixtures' real measurements (nothing measured twice)."""
    import lossviz.trainers.vlm as mod

    monkeypatch.setattr(mod, "measure_vlm", lambda seed=0: vlm)
    monkeypatch.setattr(mod, "measure_sft_vlm", lambda model, seed=0: sft[model])
    return vlm_rows()


def test_vlm_rows_name_each_rule(measured_vlm_rows):
    rows = measured_vlm_rows
    assert [r["version"] for r in rows] == ["5.24.0"] * 5 + ["1.16.0"] * 2
    naive = [r["per_token_weight"].startswith("each micro-batch's own") for r in rows]
    assert naive == [True, False, False, False, False, True, False]
    assert rows[5]["framework"] == "TRL SFTTrainer" and rows[5]["setting"].startswith("Qwen2.5-VL")


def test_probe_cli_selects_the_vlm(capsys):
    args = ["probe", "--model", "vlm", "--lengths", "3,7,20,5", "--per-device-batch-size", "2"]
    assert main([*args, "--ga-steps", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "vlm" and result["matches"] == ["naive"]
    assert main([*args[:-4], "--lengths", "3", "--case", "packed"]) == 2
    assert "llama model only" in capsys.readouterr().err


@pytest.fixture(scope="module")
def moe_one():
    """The MoE aux loss measured on 1 rank (coefficient 0.5 and 0)."""
    return measure_aux(coef=0.5, world_size=1)


@pytest.fixture(scope="module")
def moe_two():
    """The same on 2 gloo ranks, with and without average_tokens_across_devices; no rank left."""
    before = set(_live_children())
    out = measure_aux(coef=0.5, world_size=2, average_tokens_across_devices=(True, False))
    assert set(_live_children()) <= before  # both ranks ended
    return out


def test_moe_aux_keeps_its_full_coefficient_in_every_micro_batch(moe_one):
    (m,) = moe_one
    assert m["ce_expected"] == "global" and "global" in m["ce"] and m["ce_max_residual"] < 1e-5
    # d step / d router = c' * sum_k d aux_k: c' = c, so K = 2 micro-batches weigh the mean aux 2c
    assert abs(m["per_coef"] - 1) < 1e-5 and m["residual"] < 1e-4
    assert abs(m["on_mean"] - 2) < 1e-4


@pytest.mark.distributed
def test_moe_aux_grows_with_the_ranks_under_average_tokens_across_devices(moe_two):
    on, off = moe_two
    # the returned loss, aux included, x R (issue 48690): c per micro-batch, 4c on the mean
    assert on["average_tokens_across_devices"] is True and on["ce"] == ["global"]
    assert abs(on["per_coef"] - 1) < 1e-5 and abs(on["on_mean"] - 4) < 1e-4
    assert on["residual"] < 1e-4
    # without it: each rank's mean, DDP's average halves the aux: c/2 per micro-batch, 2c on the mean
    assert off["average_tokens_across_devices"] is False and off["ce"] == ["local"]
    assert abs(off["per_coef"] - 0.5) < 1e-5 and abs(off["on_mean"] - 2) < 1e-4


def test_aux_coefficient_is_a_least_squares_projection():
    got = aux_coefficient([3.0, 5.0], [1.0, 1.0], [1.0, 2.0])
    assert abs(got["coef"] - 2.0) < 1e-12 and got["residual"] < 1e-12
    with pytest.raises(ValueError, match="no gradient"):
        aux_coefficient([1.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="equal in shape"):
        aux_coefficient([1.0, 2.0], [0.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="coef must be > 0"):
        measure_aux(coef=0.0)


def test_moe_rows_without_ranks(moe_one):
    (row,) = moe_rows(world_size=1, measured=(moe_one, []))
    assert row["framework"] == "transformers Trainer" and row["version"] == "5.24.0"
    assert row["aux_loss"].startswith("c' = 1 c per micro-batch: 2 c on the mean")


@pytest.mark.parametrize("setting", ["ga", "model_flag"])
def test_a_step_with_an_image_in_every_sample_weighs_the_same_way(setting):
    from lossviz.trainers.vlm import measure_vlm_image

    r = measure_vlm_image(setting)
    # 3, 7 | 20, 5 text tokens after the image: 4, 8 | 21, 6 trained labels (the first text token
    # is scored from <vision_end>); the image positions are -100 and get no weight
    sizes = [[len(row) for row in mb] for mb in r["micro_batches"]]
    assert sizes == [[4, 8], [21, 6]] and r["image_weight_max"] == 0.0
    assert r["max_residual"] < 1e-5
    per_mb = [12, 27] if setting == "ga" else [39, 39]  # tokens a weight is divided by
    K = 2 if setting == "ga" else 1
    for mb, n in zip(r["micro_batches"], per_mb, strict=True):
        for row in mb:
            assert all(abs(w * n * K - 1) < 1e-6 for w in row)


def test_trl_sft_inherits_the_vlm_weighting(sft):
    """TRL 1.16's SFTTrainer divides by num_items_in_batch only when the Trainer counted it."""
    for model, split in (("vlm", [1 / 2, 1 / 2]), ("llm", [13 / 21, 8 / 21])):
        r = sft[model]
        assert r["trl"] == "1.16.0" and r["model_accepts_loss_kwargs"] is (model == "llm")
        assert [[n for n, _, _ in mb] for mb in r["micro_batches"]] == [[10, 3], [2, 6]]
        shares = [sum(w for _, w, _ in mb) for mb in r["micro_batches"]]
        assert all(abs(a - b) < 1e-6 for a, b in zip(shares, split, strict=True))
        # every trained token of a row weighs the same
        assert all(spread < 1e-9 for mb in r["micro_batches"] for _, _, spread in mb)


@pytest.mark.distributed
def test_the_cached_model_rows_of_the_table_are_what_the_pinned_versions_measure_now(
    measured_vlm_rows, moe_one, moe_two
):
    from lossviz.trainers.frameworks import load_table, model_path_rows

    fresh = model_path_rows(measured_vlm_rows, moe_rows(measured=(moe_one, moe_two)))
    cached = load_table()["model_rows"]
    assert fresh == cached, "run `python -m lossviz frameworks-table`"
    by_key = {r["key"]: r for r in cached}
    assert by_key["transformers/vlm_0"]["weight_model"] == "naive"
    assert by_key["transformers/moe_1"]["aux_rule"].startswith("c' = 1 c per micro-batch: 4 c")
    assert "1/(K·R) = 1/4" in by_key["transformers/moe_1"]["fix"]
