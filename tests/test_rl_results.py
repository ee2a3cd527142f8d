"""`python -m lossviz rl-experiment`, the cache, and the summaries notebook 14 prints."""

import json

import pytest

from lossviz.commands import main
from lossviz.experiments.results import check_writable
from lossviz.experiments.rl_results import (
    DEFAULT_RL_CACHE,
    format_rl_table,
    late_values,
    load_rl_results,
    paired_rl,
    rl_config_of,
    summarize_rl,
    window_mean,
)
from lossviz.experiments.rl_training import METRICS, RL_ARMS, RLConfig


@pytest.fixture(scope="module")
def cached():
    return load_rl_results()


def test_cache_was_made_by_the_default_config(cached):
    assert cached["config"] == json.loads(json.dumps(RLConfig().to_dict()))
    assert rl_config_of(cached) == RLConfig()
    assert DEFAULT_RL_CACHE.stat().st_size < 200_000
    cfg = RLConfig()
    assert sorted((r["arm"], r["seed"]) for r in cached["runs"]) == sorted(
        (a, s) for a in cfg.arms for s in cfg.seeds
    )
    assert all(len(r["curves"][m]) == cfg.steps for r in cached["runs"] for m in METRICS)


def test_window_mean_and_paired_by_hand():
    assert window_mean([1.0, None, 3.0, 5.0], -3, None) == 4.0
    assert window_mean([None, None], 0, 2) is None
    curves = lambda v: {m: v for m in METRICS}  # noqa: E731
    fake = {
        "arms": {"grpo": {}, "dr_grpo": {}},
        "config": {"arms": ["grpo", "dr_grpo"]},
        "runs": [
            {"arm": "grpo", "seed": 0, "curves": curves([1.0, 2.0, 4.0])},
            {"arm": "dr_grpo", "seed": 0, "curves": curves([0.0, 1.0, 2.0])},
            {"arm": "grpo", "seed": 1, "curves": curves([None, 2.0, 2.0])},
            {"arm": "dr_grpo", "seed": 1, "curves": curves([5.0, 3.0, None])},
        ],
    }
    assert late_values(fake, "grpo", "reward", window=2) == {0: 3.0, 1: 2.0}
    t = paired_rl(fake, "dr_grpo", "grpo", "reward", window=2)
    assert t["differences"] == {0: -1.5, 1: 1.0}
    assert (t["mean"], t["lower"], t["higher"], t["p"]) == (-0.25, 1, 1, 1.0)
    assert summarize_rl(fake, window=2)[0]["reward"]["mean"] == 2.5
    with pytest.raises(ValueError, match="not in these results"):
        paired_rl(fake, "dapo")
    with pytest.raises(ValueError, match="metric must be"):
        late_values(fake, "grpo", "accuracy")


def test_table_has_a_row_per_arm(cached):
    table = format_rl_table(cached)
    assert table.count("\n") == len(cached["arms"]) and "±" in table
    assert all(m in table.splitlines()[0] for m in METRICS)


def test_cli_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["rl-experiment", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--steps", "--seeds", "--arms", "--group", "--max-new", "--out", "--no-progress"):
        assert flag in out
    assert all(name in out for name in RL_ARMS)


def test_cli_tiny_run_writes_json(tmp_path, capsys):
    out = tmp_path / "sub" / "r.json"
    argv = "rl-experiment --steps 2 --seeds 3 --arms grpo,dr_grpo --prompts 2 --group 3"
    argv += f" --warmup-steps 2 --no-progress --out {out}"
    assert main(argv.split()) == 0
    printed = capsys.readouterr().out
    assert "dr_grpo" in printed and "2 runs" in printed and "sign test" in printed
    results = load_rl_results(out)
    assert results["config"]["group"] == 3 and results["config"]["seeds"] == [3]
    assert [len(r["curves"]["reward"]) for r in results["runs"]] == [2, 2]


def test_bad_out_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    # the default configuration would train for minutes: exit 2 at once means nothing was trained
    assert main(["rl-experiment", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["rl-experiment", "--out", str(blocker / "r.json")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    check_writable(tmp_path / "new" / "deeper" / "r.json")  # a new folder is fine: no error


@pytest.mark.parametrize(
    "argv,message",
    [
        ("--steps 0", "positive integer"),
        ("--arms grpo,median", "unknown or repeated"),
        ("--arms grpo,grpo", "unknown or repeated"),
        ("--seeds 0,0", "distinct"),
        ("--lr -1", "positive"),
    ],
)
def test_cli_bad_input_is_a_clear_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["rl-experiment", *argv.split()])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message", [("--group 1", "group must be"), ("--max-new 3", "longest correct")]
)
def test_cli_inconsistent_options_exit_2(argv, message, capsys):
    assert main(["rl-experiment", *argv.split()]) == 2
    assert message in capsys.readouterr().err


def test_missing_cache_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m lossviz rl-experiment --out"):
        load_rl_results(tmp_path / "none.json")


VARIANTS = {
    "240steps": {"steps": 240, "arms": ["grpo", "dr_grpo"]},
    "group16": {"group": 16, "arms": ["grpo", "dr_grpo"]},
    "limit32": {"max_new": 32, "arms": ["grpo", "dr_grpo"]},
}


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_caches_differ_from_the_default_only_where_stated(name):
    path = DEFAULT_RL_CACHE.with_name(f"rl_experiment_results_{name}.json")
    assert path.stat().st_size < 200_000
    expected = {**json.loads(json.dumps(RLConfig().to_dict())), **VARIANTS[name]}
    assert load_rl_results(path)["config"] == expected


def test_the_notebooks_worked_example():
    """Notebook 14's group: GRPO pushes a token of a 2-token wrong answer 6x one of a 12-token one."""
    import torch

    from lossviz import rl
    from lossviz.experiments.rl_training import group_advantages

    mask = rl.response_mask([3, 3, 2, 12], max_length=16)
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    push = {}
    for name, arm in RL_ARMS.items():
        adv = group_advantages(rewards, 4, arm.std).double()
        push[name] = rl.sample_push(mask, adv, arm.mode, max_length=16)["per_token"].tolist()
    assert push["grpo"][2] / push["grpo"][3] == pytest.approx(6)
    assert push["grpo"][2] == pytest.approx((0.5 / (1 / 3) ** 0.5) / (4 * 2), rel=1e-3)
    assert push["dapo"][2] == push["dapo"][3] == pytest.approx(0.8660 / 20, rel=1e-3)
    assert push["dr_grpo"][2] == push["dr_grpo"][3] == 0.5 / 64


def test_the_notebooks_claims_hold_in_the_caches(cached):
    """No arm differs from GRPO beyond chance; responses rarely reach the limit."""
    for arm in ("dapo", "dr_grpo", "dr_grpo_std"):
        for metric in ("len_incorrect", "excess_incorrect", "reward"):
            assert paired_rl(cached, arm, "grpo", metric)["p"] > 0.05
    for arm in cached["config"]["arms"]:
        assert max(late_values(cached, arm, "hit_limit").values()) < 0.1
        first = [
            window_mean(r["curves"]["len_incorrect"], 0, 10)
            for r in cached["runs"]
            if r["arm"] == arm
        ]
        late = late_values(cached, arm, "len_incorrect")
        # the confound the notebook names: wrong answers get longer in every arm, on average
        assert sum(late.values()) / len(late) > sum(first) / len(first)


def test_the_notebooks_claims_hold_in_the_variant_caches(cached):
    """Longer runs, larger groups, a looser limit: no paired difference beyond chance; the pooled
    share at the length limit is the one hint in the paper's direction (13 of 17 untied pairs)."""
    from lossviz.experiments.results import sign_test

    pooled = {"excess_incorrect": [], "hit_limit": []}
    for name in [None, *VARIANTS]:
        v = (
            cached
            if name is None
            else load_rl_results(DEFAULT_RL_CACHE.with_name(f"rl_experiment_results_{name}.json"))
        )
        for metric in ("len_incorrect", "excess_incorrect"):
            assert paired_rl(v, "dr_grpo", "grpo", metric)["p"] > 0.05
        for m in pooled:
            pooled[m] += list(paired_rl(v, "dr_grpo", "grpo", m)["differences"].values())
    assert sign_test(pooled["excess_incorrect"]) > 0.05
    d = pooled["hit_limit"]
    assert (sum(x < 0 for x in d), sum(x > 0 for x in d), len(d)) == (13, 4, 24)
    assert sign_test(d) == pytest.approx(0.049, abs=5e-4)


def test_the_notebooks_std_and_the_arm_that_tells_w_from_the_std(cached):
    """Notebook 14: A/std 0.8659 is the unbiased std (the primer's), 0.9998 the biased one; the
    dr_grpo_std arm separates W from the std division, and neither alone differs beyond chance."""
    import torch

    from lossviz import rl

    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert f"{float(rl.group_advantages(rewards, 4, std='unbiased')[0]):.4f}" == "0.8659"
    assert f"{float(rl.group_advantages(rewards, 4, std='biased')[0]):.4f}" == "0.9998"
    assert (f"{float(rewards.std()):.4f}", f"{float(rewards.std(correction=0)):.4f}") == (
        "0.5774",
        "0.5000",
    )
    only_std = paired_rl(cached, "dr_grpo", "dr_grpo_std", "excess_incorrect")
    assert (f"{only_std['mean']:+.3f}", only_std["lower"], only_std["higher"]) == ("-0.090", 3, 3)
    assert f"{only_std['p']:.3f}" == "1.000"
    lower = [
        paired_rl(cached, a, "grpo", "excess_incorrect")["lower"]
        for a in ("dapo", "dr_grpo", "dr_grpo_std")
    ]
    assert max(lower) <= 4
