"""The real transformers Trainer (the pinned version) measured by lv.probe, beside lossviz's W."""

import os
import sys

import pytest

pytest.importorskip("transformers")  # the trainers extra; `make test` installs it

import transformers  # noqa: E402

from lossviz.distributed import DistributedRunError  # noqa: E402
from lossviz.measured_step import verdict  # noqa: E402
from lossviz.trainers.hf_trainer import measure, measure_runs  # noqa: E402
from lossviz.trainers.versions import PINNED, SETUPS, load_table, row_from_results  # noqa: E402

LENGTHS = [3, 7, 20, 5]  # bs 2 x GA 2: micro-batches of 10 and 25 tokens
LENGTHS_2R = [12, 40, 7, 300, 5, 9, 30, 2]  # bs 1 x GA 4 x 2 ranks: 54 vs 351 tokens per rank
# A recovered float32 weight is off by ~6e-8 of the largest weight (lossviz.probe); 1e-6 covers it.
TOL = 1e-6


@pytest.fixture(scope="module")
def single():
    runs = [{"case": c} for c in ("ga", "naive", "compute_loss", "packed")]
    out = measure_runs(LENGTHS, runs, per_device_batch_size=2, ga_steps=2)
    return {r["case"]: r for r in out}


@pytest.fixture(scope="module")
def two_ranks():
    # the processes are started once: the version default (for the version table), True, False
    runs = [{"case": "ga", "average_tokens_across_devices": a} for a in (None, True, False)]
    out = measure_runs(LENGTHS_2R, runs, per_device_batch_size=1, ga_steps=4, world_size=2)
    return dict(zip(("default", True, False), out, strict=True))


def _check(result, model, not_model):
    assert result["transformers"] == transformers.__version__
    assert result["expected"] == model and model in result["matches"]
    assert not_model not in result["matches"]
    assert result["diff"][model]["max_rel_diff"] < TOL
    assert result["max_residual"] < 1e-5  # plain weighted CE (float32: ~4e-8)
    assert result["off_mask_max"] == 0.0  # no weight on padding, first labels, boundaries
    assert result["optimizer_steps"] == 1
    assert "matches lossviz's" in verdict(result)


def test_ga_over_unequal_lengths_is_the_global_token_mean(single):
    r = single["ga"]
    _check(r, "global", "naive")
    assert r["plan"] == [[[0, 1], [2, 3]]]
    # every token 1/35; naive would give 1/20 and 1/50
    assert all(abs(w - 1 / 35) < TOL / 35 for row in r["measured"] for w in row)


def test_a_model_without_loss_kwargs_falls_back_to_the_mean_of_means(single):
    r = single["naive"]
    _check(r, "naive", "global")
    assert abs(r["measured"][0][0] - 1 / 20) < TOL and abs(r["measured"][2][0] - 1 / 50) < TOL


def test_a_compute_loss_that_drops_the_count_is_not_divided_by_ga(single):
    r = single["compute_loss"]
    _check(r, "unscaled", "naive")
    assert abs(sum(r["diff"]["unscaled"]["measured_share"]) - 2.0) < 1e-5  # total weight = GA


def test_packing_with_position_ids_keeps_the_global_token_mean(single):
    r = single["packed"]
    _check(r, "global", "naive")
    assert r["plan"] == [[[0, 1], [2, 3]]]  # two samples per packed row, found at the restarts


def test_two_real_processes_with_and_without_average_tokens_across_devices(two_ranks):
    on, off = two_ranks[True], two_ranks[False]
    _check(on, "global", "local")
    _check(off, "local", "global")
    # accelerate deals whole batches to ranks: rank 0 gets samples 0, 2, 4, 6
    assert on["plan"] == [[[0], [2], [4], [6]], [[1], [3], [5], [7]]]
    # without the gathered count, rank 0's 54 tokens weigh 1/108 each, rank 1's 351 1/702
    assert abs(off["measured"][0][0] - 1 / 108) < TOL / 108
    assert abs(off["measured"][1][0] - 1 / 702) < TOL / 702


def test_bad_setups_get_clear_errors():
    with pytest.raises(ValueError, match="give 4 lengths"):
        measure([3, 7], per_device_batch_size=2, ga_steps=2)
    with pytest.raises(ValueError, match="case must be one of"):
        measure([3], case="dpo")
    with pytest.raises(ValueError, match="ga_steps"):
        measure([3], ga_steps=0)


def test_a_failing_rank_ends_every_process(tmp_path):
    broken = tmp_path / "transformers"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('a broken transformers install')\n")
    with pytest.raises(DistributedRunError, match="broken transformers") as err:
        measure([3, 4], world_size=2, pythonpath=str(tmp_path), python=sys.executable)
    for pid in err.value.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_pinned_row_of_the_version_table_matches_a_fresh_run(single, two_ranks):
    assert transformers.__version__ == PINNED, "pinned transformers changed: make version-table"
    assert LENGTHS == SETUPS["ga"]["lengths"] and LENGTHS_2R == SETUPS["ranks"]["lengths"]
    rows = {r["version"]: r for r in load_table()["rows"]}
    cached = rows[PINNED]
    fresh = row_from_results(PINNED, single["ga"], single["compute_loss"], two_ranks["default"])
    assert fresh["overcount"] == cached["overcount"] is False
    for key in ("ga", "compute_loss", "ranks"):
        a, b = fresh[key], cached[key]
        assert (a["model"], a["matches"], a["plan"]) == (b["model"], b["matches"], b["plan"])
        assert a["average_tokens_across_devices"] == b["average_tokens_across_devices"]
        # float32 recovery on two machines: each weight within 1e-6 of the largest
        top = max(b["weights"])
        assert all(abs(x - y) < TOL * top for x, y in zip(a["weights"], b["weights"], strict=True))


def test_the_in_process_step_runs_on_one_thread_with_older_objects_frozen(monkeypatch):
    """One thread and gc.freeze during the step (spikes of 0.2-1.5 s on a busy machine otherwise);
    both restored afterwards, also when the step raises."""
    import gc

    import torch

    from lossviz.trainers import hf_trainer as trainer_probe

    seen, real = {}, trainer_probe.run_case

    def spy(cfg):
        seen["threads"], seen["frozen"] = torch.get_num_threads(), gc.get_freeze_count()
        return real(cfg)

    monkeypatch.setattr(trainer_probe, "run_case", spy)
    before = torch.get_num_threads()
    r = trainer_probe.measure([3, 7], ga_steps=2)
    assert "global" in r["matches"]
    assert seen["threads"] == 1 and seen["frozen"] > 0
    assert gc.get_freeze_count() == 0 and torch.get_num_threads() == before

    def broken(cfg):
        raise RuntimeError("a failing step")

    monkeypatch.setattr(trainer_probe, "run_case", broken)
    with pytest.raises(RuntimeError, match="a failing step"):
        trainer_probe.measure([3, 7], ga_steps=2)
    assert gc.get_freeze_count() == 0 and torch.get_num_threads() == before
