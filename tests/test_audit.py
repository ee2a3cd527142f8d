"""``lossviz audit``: per-sample weights of a GA / DDP setup, the distortion, and the fix."""

import subprocess
import sys

import pytest

from lossviz.commands import build_parser, main
from lossviz.commands.audit import FIXES, audit_table

EXAMPLE = ["audit", "--lengths", "12,40,7,300", "--micro-batch-size", "1", "--ga-steps", "4"]


def test_example_prints_each_sample_and_the_worst_distortion(capsys):
    assert main([*EXAMPLE, "--world-size", "1", "--reduction", "token_mean"]) == 0
    out = capsys.readouterr().out
    assert "4 samples = micro-batch-size 1 x ga-steps 4 x world-size 1" in out
    # sample 2 trains 7 of 359 tokens but naive GA gives it 1/4 of the step: 359 / 28 = 12.821
    assert "12.821x" in out and "0.299x" in out
    assert "transformers 4.46.0" in out and "num_items_in_batch" in out
    assert "average_tokens_across_devices" not in out  # one rank: no DP fix needed
    rows = [line.split() for line in out.splitlines()[3:7]]
    assert [r[1] for r in rows[:4]] == ["12", "40", "7", "300"]


def test_table_numbers_are_the_weight_shares():
    t = audit_table([12, 40, 7, 300], 1, 4, 1, "token_mean")
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
    for option in ("--lengths", "--micro-batch-size", "--ga-steps", "--world-size", "--reduction"):
        assert option in text
    assert all(a.help for a in sub._actions)
    assert "micro_batch_size x ga_steps x world_size" in text


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
