"""lossviz.step_size: SGD follows the loss's scale, AdamW cancels a constant one, clipping caps it.

Also the numbers notebook 02c prints (8 batches of ``batch_lengths(8, seed=3)``), and transformers'
default ``max_grad_norm`` = 1.0, run through a real Trainer step.
"""

import pytest
import torch

import lossviz as lv
from lossviz import step_size
from lossviz.model import TinyCausalLM, TinyConfig
from lossviz.step_gradients import flat_grad, token_batch

LENGTHS = step_size.batch_lengths(8, seed=3)  # notebook 02c's batches


@pytest.fixture(scope="module")
def base():
    return {o: step_size.train_steps(LENGTHS, optimizer=o, lr=1e-3) for o in step_size.OPTIMIZERS}


def test_batch_lengths_are_seeded_and_in_range():
    assert step_size.batch_lengths(3, seed=1) == step_size.batch_lengths(3, seed=1)
    assert all(2 <= n <= 40 for b in LENGTHS for n in b) and len(LENGTHS) == 8
    assert [sum(b) for b in LENGTHS] == [102, 136, 80, 85, 137, 65, 69, 76]


def test_first_sgd_step_on_the_sum_is_n_times_the_means():
    lengths = LENGTHS[:1]
    mean = step_size.train_steps(lengths, optimizer="sgd", lr=1e-3)
    total = step_size.train_steps(lengths, reduction="sum", optimizer="sgd", lr=1e-3)
    # same weights, same batch: the ratio is N up to float32 rounding (~1e-7 relative)
    assert total.update_norms[0] / mean.update_norms[0] == pytest.approx(102, rel=1e-5)


def test_notebook_02c_step_ratios(base):
    n = torch.tensor([sum(b) for b in LENGTHS], dtype=torch.float64)
    n_bar = float(n.mean())
    assert n_bar == 93.75
    for opt in step_size.OPTIMIZERS:
        for div in (1.0, n_bar):
            run = step_size.train_steps(LENGTHS, reduction="sum", optimizer=opt, lr=1e-3 / div)
            r = torch.tensor(run.update_norms, dtype=torch.float64) / torch.tensor(
                base[opt].update_norms, dtype=torch.float64
            )
            # SGD: N_k / div up to the weights' drift over 8 steps (measured < 1.1%)
            # AdamW: 1 / div up to how Adam's moments mix batches of different N (measured < 5.3%)
            want = n / div if opt == "sgd" else torch.full_like(n, 1 / div)
            tol = 0.02 if opt == "sgd" else 0.06
            assert ((r / want - 1).abs() < tol).all(), (opt, div, r)


def test_adamw_cancels_a_constant_scale_but_not_the_sums_n(base):
    ref = base["adamw"]
    moved = (ref.params - ref.start).abs() > 1e-5
    apart = {}
    for name, kw in (("x100", {"scale": 100.0}), ("sum", {"reduction": "sum"})):
        run = step_size.train_steps(LENGTHS, optimizer="adamw", lr=1e-3, **kw)
        far = (run.params - ref.params).abs() > 1e-5
        apart[name] = float((far & moved).sum() / moved.sum())
    # measured 0.19% (weights whose gradient is as small as eps) and 98.3%
    assert apart["x100"] < 0.01 and apart["sum"] > 0.9


def test_after_one_adamw_step_only_weights_with_tiny_gradients_feel_a_constant_scale():
    a = step_size.train_steps(LENGTHS[:1], optimizer="adamw", lr=1e-3)
    b = step_size.train_steps(LENGTHS[:1], optimizer="adamw", lr=1e-3, scale=100.0)
    model = TinyCausalLM(TinyConfig(seed=0))
    batch = token_batch(LENGTHS[0], seed=0)  # train_steps' first batch
    logits = model(batch.input_ids, batch.position_ids, batch.sample_ids)
    lv.cross_entropy(logits, batch.labels, "mean", shift=True).backward()
    g = flat_grad(model).abs()
    far = (a.params - b.params).abs() > 1e-5
    assert 0 < int(far.sum()) < 0.01 * far.numel() and g[far].max() < 1e-6  # near eps = 1e-8


def test_sgd_with_a_constant_scale_is_the_same_as_a_larger_lr():
    a = step_size.train_steps(LENGTHS[:3], optimizer="sgd", lr=1e-3, scale=4.0)
    b = step_size.train_steps(LENGTHS[:3], optimizer="sgd", lr=4e-3)
    assert torch.allclose(a.params, b.params, atol=1e-6)  # float32 weights of size ~1


def test_clipping_catches_every_sum_step_and_no_mean_step():
    runs = {
        red: step_size.train_steps(
            LENGTHS, reduction=red, optimizer="sgd", lr=1e-3, max_grad_norm=1.0
        )
        for red in ("mean", "sum")
    }
    assert not any(runs["mean"].clipped) and all(runs["sum"].clipped)
    # notebook 02c prints 0.57 to 0.83 and 53 to 80
    assert (round(min(runs["mean"].grad_norms), 2), round(max(runs["mean"].grad_norms), 2)) == (
        0.57,
        0.83,
    )
    assert (round(min(runs["sum"].grad_norms)), round(max(runs["sum"].grad_norms))) == (53, 80)
    steps = torch.tensor(runs["sum"].update_norms) / 1e-3
    assert (steps - 1).abs().max() < 1e-5  # every clipped SGD step is lr * max_grad_norm long
    unclipped = torch.tensor(runs["mean"].update_norms) / 1e-3
    assert torch.allclose(unclipped, torch.tensor(runs["mean"].grad_norms), rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"reduction": "sample_mean"}, "reduction"),
        ({"optimizer": "adam8bit"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"scale": -1.0}, "scale"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        step_size.train_steps([[3]], **kwargs)


def test_bad_lengths():
    with pytest.raises(ValueError, match="empty"):
        step_size.train_steps([])
    with pytest.raises(ValueError, match="high"):
        step_size.batch_lengths(2, low=5, high=4)
    with pytest.raises(ValueError, match="steps"):
        step_size.batch_lengths(0)


def test_transformers_trainer_clips_the_gradient_norm_at_one_by_default(tmp_path):
    transformers = pytest.importorskip("transformers")
    from transformers import Trainer

    from lossviz.trainers.quiet import quiet_args
    from lossviz.trainers.tiny import tiny_llama

    model = tiny_llama(64, seed=0)
    start = torch.cat([p.detach().flatten().clone() for p in model.parameters()])

    class SumLoss(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            logits = model(input_ids=inputs["input_ids"]).logits
            return lv.cross_entropy(logits, inputs["labels"], "sum", shift=True)

    gen = torch.Generator().manual_seed(0)
    data = [
        {"input_ids": ids, "labels": ids}
        for ids in torch.randint(0, 64, (2, 24), generator=gen).tolist()
    ]
    args = quiet_args(
        output_dir=str(tmp_path),
        optim="sgd",
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        per_device_train_batch_size=2,
    )
    assert args.max_grad_norm == 1.0, transformers.__version__
    SumLoss(model=model, args=args, train_dataset=data).train()
    moved = torch.cat([p.detach().flatten() for p in model.parameters()]) - start
    # a summed loss over 46 tokens has a gradient norm far above 1: SGD moves exactly lr * 1.0
    assert float(moved.norm()) == pytest.approx(1e-3, rel=1e-4)
