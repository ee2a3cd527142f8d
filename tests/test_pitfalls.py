"""lossviz.pitfalls: the Trainer's dealing, the parallel-rank loss factor, and evaluation weightings."""

import itertools
import math

import pytest
import torch

from lossviz import pitfalls as pf
from lossviz.trainers.versions import load_table


def test_trainer_plan_is_the_dealing_the_probe_measured():
    rows = {r["version"]: r for r in load_table()["rows"]}
    pinned = rows["5.24.0"]
    assert pf.trainer_plan(4, per_device_batch_size=2, ga_steps=2) == pinned["ga"]["plan"]
    assert (
        pf.trainer_plan(8, per_device_batch_size=1, ga_steps=4, world_size=2)
        == pinned["ranks"]["plan"]
    )
    assert pf.trainer_plan(8, per_device_batch_size=2, ga_steps=2, world_size=2) == [
        [[0, 1], [4, 5]],
        [[2, 3], [6, 7]],
    ]


def test_trainer_plan_names_a_wrong_sample_count():
    with pytest.raises(ValueError, match="per_device_batch_size \\* ga_steps \\* world_size = 4"):
        pf.trainer_plan(5, per_device_batch_size=2, ga_steps=2)
    with pytest.raises(ValueError, match="ga_steps"):
        pf.trainer_plan(4, per_device_batch_size=2, ga_steps=0)


def _brute_force_factor(dp, tp, sp, count_divisor, multiplier, seed=0):
    """Deal random token losses to a dp x tp x sp mesh and average what every rank reports."""
    gen = torch.Generator().manual_seed(seed)
    n = torch.randint(1, 50, (dp,), generator=gen)  # tokens of each data-parallel group
    losses = [torch.rand(int(k), generator=gen, dtype=torch.float64) * 5 for k in n]
    reports, counts = [], []
    for d, _t, s in itertools.product(range(dp), range(tp), range(sp)):
        shard = torch.tensor_split(losses[d], sp)[s]  # sp splits the sequence; tp replicates it
        reports.append(float(shard.sum()))
        counts.append(shard.numel())
    count = sum(counts) / count_divisor  # all-gathered, then divided
    reported = sum(r / count * multiplier for r in reports) / len(reports)
    true = float(torch.cat(losses).sum()) / float(n.sum())
    return reported / true


@pytest.mark.parametrize(
    ("dp", "tp", "sp", "divisor", "mult", "factor"),
    [
        (2, 4, 1, 4, 8, 4.0),  # before transformers PR 45994: x num_processes
        (2, 4, 1, 4, 2, 1.0),  # 5.24.0: x num_processes // tp
        (2, 1, 2, 2, 4, 2.0),  # the review of PR 46775: count / sp although sp shards
        (3, 2, 2, 2, 6, 1.0),  # right: divide by the replicas only, multiply by dp * sp
    ],
)
def test_parallel_loss_factor_matches_a_brute_force_mesh(dp, tp, sp, divisor, mult, factor):
    got = pf.parallel_loss_factor(dp, tp, sp, count_divisor=divisor, multiplier=mult)
    assert got == factor
    # float64 sums of < 200 terms: rounding stays far below 1e-12
    assert abs(_brute_force_factor(dp, tp, sp, divisor, mult) - factor) < 1e-12


def test_transformers_5_24_scales_by_num_processes_over_tp():
    """The rule parallel_loss_factor models, read from the installed Trainer's source."""
    import inspect

    transformers = pytest.importorskip("transformers")
    assert transformers.__version__ == "5.24.0"
    src = inspect.getsource(transformers.Trainer.compute_loss)
    assert "loss_scale = self.accelerator.num_processes // self.get_tp_size()" in src
    count_src = inspect.getsource(transformers.Trainer._get_num_items_in_batch)
    assert "self.get_tp_size() * self.get_cp_size() * self.get_sp_size()" in count_src
    assert 'batch["labels"][..., 1:]' in count_src  # the 46204 fix: count after the shift


def test_eval_weights_by_hand():
    w = pf.eval_weights([2, 30, 3], weighting="token")
    assert torch.allclose(w, torch.full((3,), 1 / 35, dtype=torch.float64))
    w = pf.eval_weights([2, 30, 3], weighting="batch")
    assert torch.allclose(w, torch.tensor([1 / 6, 1 / 90, 1 / 9], dtype=torch.float64))
    w = pf.eval_weights([2, 30, 3], weighting="sample", sizes=[2, 2, 1])
    assert torch.allclose(w, torch.tensor([2 / 10, 2 / 150, 1 / 15], dtype=torch.float64))
    for weighting in pf.EVAL_WEIGHTINGS:  # every weighting is a mean: total weight 1
        total = pf.eval_weights([2, 30, 3], weighting=weighting, sizes=[2, 2, 1]) * torch.tensor(
            [2.0, 30.0, 3.0], dtype=torch.float64
        )
        assert float(total.sum()) == pytest.approx(1.0, abs=1e-15)


def test_eval_loss_token_weighting_is_the_mean_over_every_token():
    batches = [torch.tensor([1.0, 3.0]), torch.tensor([2.0] * 6), torch.tensor([10.0])]
    assert pf.eval_loss(batches) == pytest.approx(26 / 9)
    assert pf.eval_loss(batches, weighting="batch") == pytest.approx((2 + 2 + 10) / 3)
    assert math.exp(pf.eval_loss(batches)) == pytest.approx(math.exp(26 / 9))


def test_eval_inputs_that_have_no_answer_are_refused():
    with pytest.raises(ValueError, match="weighting must be one of"):
        pf.eval_weights([2], weighting="mean")
    with pytest.raises(ValueError, match="needs sizes"):
        pf.eval_weights([2], weighting="sample")
    with pytest.raises(ValueError, match="sizes has 1 batches but counts has 2"):
        pf.eval_weights([2, 3], weighting="sample", sizes=[1])
    with pytest.raises(ValueError, match="counts\\[1\\]"):
        pf.eval_weights([2, 0])
    with pytest.raises(ValueError, match="empty"):
        pf.eval_weights([])
    with pytest.raises(ValueError, match="NaN or infinite"):
        pf.eval_loss([torch.tensor([1.0, float("nan")])])
