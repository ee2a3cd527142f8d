"""PyTorch Lightning 2.6 (automatic optimization) measured by the probe, in one process.

Real ``pytorch_lightning.Trainer.fit`` epochs on the tiny Llama (built from a config, nothing
downloaded). What Lightning's source says (``loops/optimization/automatic.py`` divides every
``training_step`` loss by ``accumulate_grad_batches``; ``loops/training_epoch_loop.py`` steps on the
last batch of an epoch) is checked here token by token; the 2-rank run is in ``test_frameworks.py``.
"""

import pytest

pytest.importorskip("pytorch_lightning")  # the trainers extra; `make test` installs it

from lossviz.trainers.frameworks import measure_runs  # noqa: E402


@pytest.fixture(scope="module")
def runs():
    base = {"framework": "lightning", "setting": "automatic"}
    return measure_runs(
        [
            dict(base, lengths=[3, 9, 2, 5, 7], ga_steps=3),  # a full window, then 2 of 3
            dict(base, lengths=[4, 6], ga_steps=4),  # the epoch is shorter than K
            dict(base, lengths=[3, 9, 2, 5], per_device_batch_size=2, ga_steps=2),  # padding
            dict(base, lengths=[3, 9, 2, 5, 7], ga_steps=3, setting="token_count"),  # the fix
        ]
    )


def shares(step):
    return [sum(w) for w in step["measured"]]


def test_every_loss_is_divided_by_k_and_no_token_is_counted(runs):
    r = runs[0]
    assert r["version"].startswith("2.6") and r["optimizer_steps"] == 2
    full = r["steps"][0]
    assert full["micro_batches"] == 3 and full["lengths"] == [3, 9, 2]
    # each micro-batch's own token mean / K: every token of sample b weighs 1 / (3 n_b)
    for n, w in zip(full["lengths"], full["measured"], strict=True):
        assert w == pytest.approx([1 / (3 * n)] * n, rel=1e-6)
    assert "naive_configured" in full["matches"] and "global" not in full["matches"]
    assert r["max_residual"] < 1e-5 and r["off_mask_max"] == 0.0
    assert r["unmatched"] == 0


def test_the_short_last_window_is_still_divided_by_k(runs):
    last = runs[0]["steps"][1]
    assert last["lengths"] == [5, 7] and last["micro_batches"] == 2  # Lightning stepped at the end
    assert sum(shares(last)) == pytest.approx(2 / 3, rel=1e-6)  # k / K, not 1
    assert last["matches"] == ["naive_configured"]  # neither the window's mean of means nor 1/N


def test_k_larger_than_the_epoch_steps_once_on_the_last_batch_without_a_word(runs):
    r = runs[1]
    assert r["optimizer_steps"] == 1 and len(r["steps"]) == 1
    assert shares(r["steps"][0]) == pytest.approx([0.25, 0.25], rel=1e-6)  # 2 of K = 4
    # Lightning issue 21808: nothing says that accumulation never happens as configured
    assert not [w for w in r["warnings"] if "accumulat" in w.lower()]


def test_padding_gets_no_weight_and_each_micro_batch_is_its_own_token_mean(runs):
    step = runs[2]["steps"][0]
    assert step["plan"] == [[[0, 1], [2, 3]]]
    assert shares(step) == pytest.approx([3 / 24, 9 / 24, 2 / 14, 5 / 14], rel=1e-6)
    assert runs[2]["off_mask_max"] == 0.0 and "naive" in step["matches"]


def test_the_parameter_gradient_is_that_of_sum_w_l(runs):
    for r in runs:
        for step in r["steps"]:
            assert max(step["grad_rel_diff"]) < 1e-4


def test_the_fix_counting_every_window_gives_each_token_1_over_n(runs):
    full, last = runs[3]["steps"]
    for step, N in ((full, 14), (last, 12)):  # the last window is its own token mean too
        assert "global" in step["matches"]
        for w in step["measured"]:
            assert w == pytest.approx([1 / N] * len(w), rel=1e-6)
