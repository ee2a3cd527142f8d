"""lossviz.step_shape: one step's size, the Trainer's and the sampler's dealing, filling, lookup."""

import pytest

from lossviz import step_shape as shape
from lossviz.trainers.versions import load_table

# the issue's setup: lengths 10..80, batch 2, GA 2, 2 ranks
SETUP = {"per_device_batch_size": 2, "ga_steps": 2, "world_size": 2}


def test_trainer_dealing_is_the_dealing_the_probe_measured():
    rows = {r["version"]: r for r in load_table()["rows"]}
    pinned = rows["5.24.0"]
    assert shape.trainer_dealing(4, per_device_batch_size=2, ga_steps=2) == pinned["ga"]["plan"]
    assert (
        shape.trainer_dealing(8, per_device_batch_size=1, ga_steps=4, world_size=2)
        == pinned["ranks"]["plan"]
    )


@pytest.mark.parametrize(("B", "K", "R"), [(2, 2, 2), (1, 4, 2), (3, 2, 3), (2, 3, 1)])
def test_trainer_dealing_is_what_accelerate_deals(B, K, R):
    """accelerate's BatchSamplerShard (what Trainer.get_train_dataloader prepares) on a sequential
    sampler: rank p's first K batches are its micro-batches of the first optimizer step."""
    accelerate = pytest.importorskip("accelerate")
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    assert accelerate.__version__ == "1.16.0"
    n = B * K * R
    batches = BatchSampler(SequentialSampler(range(n)), batch_size=B, drop_last=False)
    got = [
        [list(b) for b in BatchSamplerShard(batches, num_processes=R, process_index=p)][:K]
        for p in range(R)
    ]
    assert got == shape.trainer_dealing(n, per_device_batch_size=B, ga_steps=K, world_size=R)


def test_the_two_rules_differ_on_the_issue_setup():
    trainer = shape.deal(8, ga_steps=2, world_size=2, dealing="trainer")
    sampler = shape.deal(8, ga_steps=2, world_size=2, dealing="sampler")
    assert trainer == [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]  # whole batches
    assert sampler == [[[0, 2], [4, 6]], [[1, 3], [5, 7]]]  # sample i to rank i % R
    assert shape.locate(trainer)[2] == (1, 0) and shape.locate(sampler)[2] == (0, 0)
    # one rank, or one sample per batch: the rules agree
    for n, K, R in [(6, 3, 1), (8, 4, 2)]:
        assert shape.deal(n, ga_steps=K, world_size=R, dealing="trainer") == shape.deal(
            n, ga_steps=K, world_size=R
        )


def test_sampler_dealing_splits_each_rank_larger_first():
    assert shape.sampler_dealing(5, ga_steps=2, world_size=2) == [[[0, 2], [4]], [[1], [3]]]
    assert shape.sampler_dealing(3, ga_steps=4) == [[[0], [1], [2], []]]


def test_locate_answers_which_rank_and_micro_batch_holds_each_sample():
    plan = shape.trainer_dealing(8, **SETUP)
    where = shape.locate(plan)
    for i, (p, k) in enumerate(where):
        assert i in plan[p][k]
    with pytest.raises(ValueError, match="dealt twice"):
        shape.locate([[[0, 1], [1]]])
    with pytest.raises(ValueError, match=r"samples \[1\] are missing"):
        shape.locate([[[0], [2]]])


def test_one_check_of_batch_times_ga_times_ranks():
    assert shape.step_samples(2, 2, 2) == 8
    assert shape.check_step(8, **SETUP) == 8
    with pytest.raises(ValueError, match="2 x 2 x 2 = 8 samples, but lengths gave 7; give 8"):
        shape.check_step(7, **SETUP)
    with pytest.raises(ValueError, match="ga_steps"):
        shape.trainer_dealing(4, per_device_batch_size=2, ga_steps=0)
    with pytest.raises(ValueError, match="2 x 2 x 1 = 4 samples, but num_samples gave 5"):
        shape.trainer_dealing(5, per_device_batch_size=2, ga_steps=2)
    with pytest.raises(ValueError, match="multiple of ga_steps x world_size = 4"):
        shape.deal(6, ga_steps=2, world_size=2, dealing="trainer")
    with pytest.raises(ValueError, match="dealing must be one of"):
        shape.deal(4, ga_steps=2, dealing="accelerate")


def test_one_rule_fills_a_step_from_a_short_list():
    assert shape.fill_step([3, 7], 5) == (
        [3, 7, 3, 7, 3],
        "the 2 lengths repeated to fill the step's 5 samples",
    )
    assert shape.fill_step([3, 7], 2) == ([3, 7], "")
    assert shape.fill_step([1, 2, 3], 2) == ([1, 2], "the 3 lengths cut to the step's 2 samples")
    with pytest.raises(ValueError, match="give at most 2"):
        shape.fill_step([1, 2, 3], 2, cut=False)
    with pytest.raises(ValueError, match="at least one length"):
        shape.fill_step([], 2)


def test_grouping_sorts_before_dealing():
    assert shape.deal(4, ga_steps=2, group_by=[9, 2, 7, 1]) == [[[3, 1], [2, 0]]]
    assert shape.deal(4, ga_steps=2, dealing="trainer", group_by=[9, 2, 7, 1]) == [[[3, 1], [2, 0]]]
    with pytest.raises(ValueError, match="one key per sample"):
        shape.deal(4, ga_steps=2, group_by=[1, 2])
