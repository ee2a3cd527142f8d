"""lossviz.tensor_parallel: the reported loss's factor over a data/tensor/sequence-parallel mesh."""

import itertools

import pytest
import torch

from lossviz import tensor_parallel as tpar


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
    got = tpar.parallel_loss_factor(dp, tp, sp, count_divisor=divisor, multiplier=mult)
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
