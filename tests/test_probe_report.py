"""``lossviz probe``: the real Trainer's per-sample weights, lossviz's prediction and a verdict."""

import json

import pytest

pytest.importorskip("transformers")  # the trainers extra; `make test` installs it

from lossviz.commands import build_parser, main  # noqa: E402

ARGS = ["probe", "--trainer", "transformers", "--lengths", "12,40,7,300", "--ga-steps", "4"]


def test_naive_fallback_is_caught_and_explained(capsys):
    assert main([*ARGS, "--case", "naive"]) == 0
    out = capsys.readouterr().out
    assert "4 samples = per-device-batch-size 1 x ga-steps 4 x world-size 1; case naive" in out
    rows = [line.split() for line in out.splitlines()[3:7]]
    assert [r[1] for r in rows] == ["12", "40", "7", "300"]
    # each micro-batch is one sample, so each gets 1/4 of the step: 7 tokens of 359 -> 359/28
    assert [r[4] for r in rows] == ["0.25000"] * 4
    assert "12.821x (up)" in out and "matches lossviz's `naive` model within 1e-6" in out


def test_json_output_holds_the_measurement(capsys):
    assert main([*ARGS[:-2], "--lengths", "3,5", "--ga-steps", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["expected"] == "global" and "global" in result["matches"]
    assert result["plan"] == [[[0], [1]]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ga-steps", "1"], "give at most 1"),
        (["--world-size", "9"], "at most 8"),
    ],
)
def test_bad_setups_exit_2_with_a_message(capsys, extra, message):
    assert main([*ARGS[:-2], "--lengths", "1,2", *extra]) == 2
    assert message in capsys.readouterr().err


def test_help_explains_each_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["probe", "--help"])
    out = capsys.readouterr().out
    for opt in ("--trainer", "--lengths", "--per-device-batch-size", "--ga-steps", "--world-size"):
        assert opt in out
    assert "--case" in out and "average_tokens_across_devices" in out and "--json" in out
