"""accelerate 1.16: the plain ``accumulate()`` loop, the documented token-count recipe and its fix.

Real ``Accelerator`` loops on the tiny Llama in one process, under the probe; the 2-rank runs are in
``test_frameworks.py``. ``Accelerator.backward`` divides every loss by ``gradient_accumulation_steps``
(also in a short last window, which the end of the data closes with a step); the recipe counts
``labels != -100`` before the model's causal shift: one token per row too many.
"""

import pytest

pytest.importorskip("accelerate")  # the trainers extra; `make test` installs it

from lossviz.trainers.accelerate_step import LOOPS  # noqa: E402
from lossviz.trainers.frameworks import measure, measure_runs  # noqa: E402

LENGTHS = [3, 9, 2, 5, 7]


@pytest.fixture(scope="module")
def runs():
    got = measure_runs(
        [
            {"framework": "accelerate", "setting": s, "lengths": LENGTHS, "ga_steps": 3}
            for s in LOOPS
        ]
        + [
            {
                "framework": "accelerate",
                "setting": "recipe",
                "lengths": [3, 9, 2, 5],
                "per_device_batch_size": 2,
                "ga_steps": 2,
            }
        ]
    )
    return dict(zip([*LOOPS, "recipe_b2"], got, strict=True))


def shares(step):
    return [sum(w) for w in step["measured"]]


def test_the_plain_loop_divides_by_k_even_in_the_last_window(runs):
    r = runs["accumulate"]
    assert r["version"].startswith("1.16") and r["optimizer_steps"] == 2  # the data's end steps
    full, last = r["steps"]
    assert shares(full) == pytest.approx([1 / 3] * 3, rel=1e-6)
    assert last["lengths"] == [5, 7] and sum(shares(last)) == pytest.approx(2 / 3, rel=1e-6)
    assert last["matches"] == ["naive_configured"]


def test_the_documented_recipe_counts_one_token_per_row_too_many(runs):
    full, last = runs["recipe"]["steps"]
    # N = 14 trained tokens, 3 rows: every token weighs 1 / 17 instead of 1 / 14
    for w in full["measured"]:
        assert w == pytest.approx([1 / 17] * len(w), rel=1e-6)
    assert "global_overcount" in full["matches"] and "global" not in full["matches"]
    assert sum(shares(last)) == pytest.approx(12 / 14, rel=1e-6)  # its own count: 12 + 2 rows
    # with 2 rows per micro-batch the count still grows by one per row (padding is not counted)
    b2 = runs["recipe_b2"]["steps"][0]
    assert shares(b2) == pytest.approx([n / 23 for n in [3, 9, 2, 5]], rel=1e-6)


def test_counting_the_shifted_labels_gives_the_token_mean(runs):
    for step in runs["recipe_shifted"]["steps"]:
        assert "global" in step["matches"]
        assert sum(shares(step)) == pytest.approx(1.0, rel=1e-6)


def test_every_loop_is_plain_cross_entropy_and_its_gradient_is_that_of_sum_w_l(runs):
    for r in runs.values():
        assert r["max_residual"] < 1e-5 and r["off_mask_max"] == 0.0 and r["unmatched"] == 0
        assert all(max(st["grad_rel_diff"]) < 1e-4 for st in r["steps"])


def test_a_bad_run_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="accelerate setting must be one of"):
        measure("accelerate", "nope", LENGTHS)
    with pytest.raises(ValueError, match="multiple of per_device_batch_size x world_size = 2"):
        measure("accelerate", "accumulate", LENGTHS, world_size=2)
