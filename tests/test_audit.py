"""``lossviz audit``: per-sample weights of a GA / DDP setup, the distortion, and the fix."""

import json
import subprocess
import sys

import pytest

from lossviz.commands import build_parser, main
from lossviz.step_audit import FIXES, audit_table

EXAMPLE = ["audit", "--lengths", "12,40,7,300", "--per-device-batch-size", "1", "--ga-steps", "4"]


def test_example_prints_each_sample_and_the_worst_distortion(capsys):
    assert main([*EXAMPLE, "--world-size", "1", "--reduction", "token_mean"]) == 0
    out = capsys.readouterr().out
    assert "4 samples = per_device_batch_size 1 x ga_steps 4 x world_size 1" in out
    # sample 2 trains 7 of 359 tokens but naive GA gives it 1/4 of the step: 359 / 28 = 12.821
    assert "12.821x" in out and "0.299x" in out
    assert "transformers 4.46.0" in out and "num_items_in_batch" in out
    assert "average_tokens_across_devices" not in out  # one rank: no DP fix needed
    rows = [line.split() for line in out.splitlines()[3:7]]
    assert [r[1] for r in rows[:4]] == ["12", "40", "7", "300"]


def test_table_numbers_are_the_weight_shares():
    t = audit_table([12, 40, 7, 300], per_device_batch_size=1, ga_steps=4)
    assert t["intended"] == pytest.approx([12 / 359, 40 / 359, 7 / 359, 300 / 359])
    assert t["naive"] == pytest.approx([0.25] * 4)
    assert t["global"] == pytest.approx(t["intended"])
    assert t["sum"] == pytest.approx([12 / 4, 40 / 4, 7 / 4, 300 / 4])
    assert t["worst_up"] == pytest.approx(359 / 28)


def test_data_parallel_setup_names_average_tokens_across_devices(capsys):
    args = ["audit", "--lengths", "1,9", "--world-size", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "average_tokens_across_devices" in out and "4.54.0" in out
    assert "num_items_in_batch to the loss" not in out  # no accumulation: no GA fix line


def test_equal_micro_batches_need_no_fix(capsys):
    assert main(["audit", "--lengths", "5,5,5,5", "--ga-steps", "4"]) == 0
    assert "No fix needed" in capsys.readouterr().out


def test_wrong_sample_count_is_explained_with_exit_code_2(capsys):
    assert main(["audit", "--lengths", "12,40,7", "--ga-steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "1 x 4 x 1 = 4 samples" in err and "gave 3" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lengths", "12,x"], "positive integer"),
        (["--lengths", "12,,3"], "comma-separated"),
        (["--lengths", "0,3"], "positive integer"),
        (["--lengths", "3", "--ga-steps", "0"], "positive integer"),
        (["--lengths", "3", "--reduction", "avg"], "unknown reduction"),
        ([], "--lengths"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        main(["audit", *extra])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_explains_every_option():
    sub = build_parser()._subparsers._group_actions[0].choices["audit"]
    text = sub.format_help()
    for option in (
        "--lengths",
        "--per-device-batch-size",
        "--ga-steps",
        "--world-size",
        "--dealing",
    ):
        assert option in text
    assert all(a.help for a in sub._actions)
    assert "per_device_batch_size x ga_steps x world_size" in text and "--json" in text


def test_fix_texts_name_the_versions():
    assert "4.46.0" in FIXES["ga"] and "24725" in FIXES["ga"]
    assert "4.47.0" in FIXES["dp"] and "4.54.0" in FIXES["dp"] and "34242" in FIXES["dp"]


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "lossviz", *EXAMPLE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "12.821x" in proc.stdout


def test_a_uniform_scale_is_called_a_step_size_change(capsys):
    assert main(["audit", "--lengths", "3,8", "--ga-steps", "2", "--reduction", "sum"]) == 0
    assert "same 0.5" in capsys.readouterr().out


# the issue's setup: lengths 10..80, batch 2, GA 2, 2 ranks
ISSUE = ["--lengths", "10,20,30,40,50,60,70,80", "--per-device-batch-size", "2", "--ga-steps", "2"]
ISSUE += ["--world-size", "2"]


def _audit_json(capsys, *extra):
    assert main(["audit", *ISSUE, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_audit_deals_as_the_trainer_by_default_and_as_the_sampler_on_request(capsys):
    trainer = _audit_json(capsys)
    assert trainer["dealing"] == "trainer"
    assert trainer["plan"] == [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]  # whole batches to ranks
    # rank 0's first micro-batch holds 10 + 20 = 30 tokens: under naive accumulation each of its
    # samples weighs its count / 30, divided by GA and by the ranks
    assert trainer["naive"][:2] == pytest.approx([10 / 30 / 4, 20 / 30 / 4])
    sampler = _audit_json(capsys, "--dealing", "sampler")
    assert sampler["plan"] == [[[0, 2], [4, 6]], [[1, 3], [5, 7]]]  # sample i to rank i % 2
    assert sampler["naive"][:2] == pytest.approx([10 / 40 / 4, 20 / 60 / 4])
    for t in (trainer, sampler):  # the global fix does not depend on the dealing
        assert t["global"] == pytest.approx([n / 360 for n in range(10, 90, 10)])


def test_the_old_batch_flag_still_reads_as_the_per_device_batch_size(capsys):
    old = [a if a != "--per-device-batch-size" else "--micro-batch-size" for a in ISSUE]
    assert main(["audit", *old, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_device_batch_size"] == 2


def test_audit_and_probe_predict_the_same_weights_for_the_same_setup(capsys):
    """The real Trainer (2 gloo ranks, the naive case, where the dealing matters): its measured
    per-sample weights, lossviz probe's predictions and lossviz audit's columns all agree."""
    pytest.importorskip("transformers")
    audit = _audit_json(capsys)
    assert main(["probe", *ISSUE, "--case", "naive", "--json"]) == 0
    probe = json.loads(capsys.readouterr().out)
    assert probe["plan"] == probe["predicted_plan"] == audit["plan"]
    for col in ("naive", "global", "sum"):
        assert probe["diff"][col]["predicted_share"] == pytest.approx(audit[col], rel=1e-12)
    # float32 recovery of the measured weights: ~6e-8 relative (lossviz.probe)
    measured = probe["diff"]["naive"]["measured_share"]
    assert measured == pytest.approx(audit["naive"], rel=1e-6)
