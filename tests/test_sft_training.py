import pytest
import torch

import lossviz as lv
from lossviz.experiments.sft_training import (
    ARMS,
    ExperimentConfig,
    _training_batches,
    batch_loss,
    greedy_decode,
    run_experiment,
    train_arm,
    typical_tokens,
)
from lossviz.experiments.tasks import EOS, TaskConfig, balanced_examples, sample_examples
from lossviz.model import TinyCausalLM

TINY = ExperimentConfig(
    arms=("token_mean", "sample_mean"), seeds=(0,), steps=25, eval_per_bucket=4, eval_every=5
)


def _grads(cfg, examples, arm, ga_steps=4):
    model = TinyCausalLM(cfg.model_config(0))
    batch_loss(model, examples, arm, ga_steps, cfg.task.max_prompt)
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("d_model,n_layers,n_heads", [(32, 2, 2), (48, 3, 4), (16, 1, 1)])
def test_model_forward_backward_shapes(d_model, n_layers, n_heads):
    cfg = ExperimentConfig(d_model=d_model, n_layers=n_layers, n_heads=n_heads)
    model = TinyCausalLM(cfg.model_config(0))
    examples = sample_examples(5, 0, cfg.task)
    from lossviz.experiments.tasks import collate

    ids, labels, mask, sids = collate(examples, prompt_length=cfg.task.max_prompt)
    logits = model(ids, sample_ids=sids)
    assert logits.shape == (5, ids.shape[1], cfg.vocab_size)
    lv.reduce(lv.token_losses(logits, labels, shift=True), mask).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_typical_tokens_by_hand():
    # shares 0.6, 0.25, 0.15; mean answer 1.5, 3.5, 6 tokens, + EOS
    assert typical_tokens(ExperimentConfig()) == pytest.approx(
        16 * (0.6 * 2.5 + 0.25 * 4.5 + 0.15 * 7)
    )


def test_global_accumulation_gives_the_full_batch_gradient_and_naive_does_not():
    cfg = ExperimentConfig()
    examples = sample_examples(16, 4, cfg.task)
    full = _grads(cfg, examples, ARMS["token_mean"])
    assert torch.allclose(_grads(cfg, examples, ARMS["ga_global"]), full, atol=1e-6, rtol=1e-4)
    naive = _grads(cfg, examples, ARMS["ga_naive"])
    assert (naive - full).norm() > 0.05 * full.norm()


def test_sum_gradient_is_token_count_times_token_mean():
    cfg = ExperimentConfig()
    examples = sample_examples(16, 2, cfg.task)
    n = sum(len(e.response) for e in examples)
    full = _grads(cfg, examples, ARMS["token_mean"])
    assert torch.allclose(_grads(cfg, examples, ARMS["sum"]), n * full, atol=1e-5, rtol=1e-4)


def test_batched_greedy_decoding_equals_decoding_each_prompt_alone():
    cfg = ExperimentConfig()
    model = TinyCausalLM(cfg.model_config(1)).eval()
    prompts = [e.prompt for e in balanced_examples(2, 0, cfg.task)]
    together = greedy_decode(model, prompts, 5, cfg.task.max_prompt)
    alone = [greedy_decode(model, [p], 5, cfg.task.max_prompt)[0] for p in prompts]
    assert together == alone


def test_short_training_run_learns_and_is_deterministic():
    first = run_experiment(TINY)
    second = run_experiment(TINY)
    for a, b in zip(first["runs"], second["runs"], strict=True):
        a, b = dict(a), dict(b)
        assert a.pop("seconds") >= 0 and b.pop("seconds") >= 0
        assert a == b
    for run in first["runs"]:
        losses = run["train_loss"]
        assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
        assert run["eval_loss"]["short"][-1] < run["eval_loss"]["short"][0]
        assert 0.0 <= run["final"]["long"]["accuracy"] <= 1.0
    assert first["config"]["steps"] == 25 and len(first["runs"]) == 2


def test_arms_share_data_and_initial_weights():
    cfg = ExperimentConfig(steps=1, eval_per_bucket=2)
    runs = [train_arm(ARMS[a], 3, cfg) for a in ("token_mean", "sample_mean", "ga_global")]
    assert runs[0]["train_loss"] == runs[1]["train_loss"]  # logged before any update
    assert runs[0]["train_loss"] == pytest.approx(runs[2]["train_loss"], abs=1e-4)


def test_sum_arm_scales_the_learning_rate():
    cfg = ExperimentConfig(steps=1, eval_per_bucket=1)
    run = train_arm(ARMS["sum"], 0, cfg)
    assert run["lr"] == pytest.approx(cfg.lr / typical_tokens(cfg))
    assert train_arm(ARMS["sum_same_lr"], 0, cfg)["lr"] == cfg.lr


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"arms": ("median",)}, "unknown arms"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 10, "ga_steps": 4}, "divisible"),
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"seeds": (1, 1)}, "distinct"),
        ({"lr": 0.0}, "lr"),
    ],
)
def test_bad_configs_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(**kwargs)


def test_vocab_size_reaches_the_task():
    cfg = ExperimentConfig(vocab_size=20)
    assert cfg.task.vocab_size == 20 and cfg.model_config(0).vocab_size == 20
    assert cfg.task == TaskConfig(vocab_size=20)
    assert EOS < cfg.vocab_size


def test_seed_s_trains_on_the_stream_of_seed_1000_plus_s():
    cfg = ExperimentConfig(steps=2)
    batches = _training_batches(cfg, 0)
    assert batches[0] == sample_examples(cfg.batch_size, 1000, cfg.task)
    assert batches[0] + batches[1] == sample_examples(2 * cfg.batch_size, 1000, cfg.task)


def test_progress_bar_reports_on_stderr(capsys):
    cfg = ExperimentConfig(arms=("token_mean",), seeds=(0,), steps=2, eval_per_bucket=1)
    run_experiment(cfg, progress=True)
    err = capsys.readouterr().err
    assert "training" in err and "2/2" in err
    run_experiment(cfg, progress=False)
    assert capsys.readouterr().err == ""


def test_arm_rejects_an_unknown_accumulation():
    from lossviz.experiments.sft_training import Arm

    with pytest.raises(ValueError, match="accumulation"):
        Arm("x", "x", accumulation="sometimes")


def test_logged_loss_is_the_answer_token_mean_for_every_arm():
    cfg = ExperimentConfig()
    examples = sample_examples(16, 9, cfg.task)
    logged = []
    for name in ("token_mean", "prompt_weight", "ga_naive"):
        model = TinyCausalLM(cfg.model_config(0))
        logged.append(float(batch_loss(model, examples, ARMS[name], 4, cfg.task.max_prompt)))
    assert logged[1] == pytest.approx(logged[0], rel=1e-5)
    assert logged[2] == pytest.approx(logged[0], rel=1e-5)


@pytest.mark.parametrize("arm", ["token_mean", "ga_naive", "ga_global", "prompt_weight"])
def test_the_one_ga_loop_gives_the_gradient_of_a_loop_written_out_bit_for_bit(arm):
    """batch_loss runs lv.step_gradients.rank_grad; a loop written out here (each micro-batch
    collated to its own width, its loss reduced and backpropagated) gives the same bits."""
    from lossviz.experiments.tasks import collate

    cfg = ExperimentConfig()
    examples = _training_batches(cfg, 0)[0]
    P, spec = cfg.task.max_prompt, ARMS[arm]
    got = _grads(cfg, examples, spec)
    model = TinyCausalLM(cfg.model_config(0))
    mask = collate(examples, spec.prompt_weight, P)[2]
    if spec.accumulation == "none":
        plan, local = [list(range(len(examples)))], [lv.weights(mask, spec.reduction)]
    else:
        keys = [(len(e.response), len(e.prompt)) for e in examples]
        plan = lv.step_shape.deal(len(examples), ga_steps=4, group_by=keys)
        local = lv.accumulation.micro_batch_weights(
            mask, plan, reduction=spec.reduction, normalize=spec.accumulation
        )[0]
        plan = plan[0]
    for rows, w in zip(plan, local, strict=True):
        ids, labels, m, sids = collate([examples[i] for i in rows], spec.prompt_weight, P)
        losses = lv.token_losses(model(ids, sample_ids=sids), labels, shift=True)
        lv.reduce(losses, w[:, : m.shape[1]], "sum").backward()
    want = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.equal(got, want)
