"""lossviz.probe: the per-token weight read back from the logits' gradient."""

import copy

import pytest
import torch
from torch.nn import functional as F

import lossviz as lv
from lossviz.model import TinyCausalLM, TinyConfig
from lossviz.probe import RESIDUAL_TOL, infer_labels, probe, recover_weights, residual_tol
from lossviz.step_gradients import flat_grad, token_batch


def _weighted_ce(B=3, T=5, V=7, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(B, T, V, generator=gen, dtype=dtype, requires_grad=True)
    y = torch.randint(0, V, (B, T), generator=gen)
    y[0, 3:] = -100
    y[2, 0] = -100
    w = torch.rand(B, T, generator=gen, dtype=dtype) * (y != -100)
    tok = F.cross_entropy(z.reshape(-1, V), y.reshape(-1), reduction="none", ignore_index=-100)
    (w.reshape(-1) * tok).sum().backward()
    return z, y, w, z.grad


def test_recover_weights_exact_on_hand_built_weighted_ce():
    z, y, w, g = _weighted_ce()
    W, res = recover_weights(z, y, g)
    # float64 throughout: one rounding of softmax and of the dot products, ~1e-16 relative
    assert torch.allclose(W, w, rtol=0, atol=1e-13)
    assert float(res.max()) < 1e-12


def test_recover_weights_by_hand_on_one_token():
    # g = w (p - e_y): p = softmax([0, 0]) = [1/2, 1/2], y = 0, w = 0.25 -> g = [-1/8, 1/8]
    W, res = recover_weights(torch.zeros(2), torch.tensor(0), torch.tensor([-0.125, 0.125]))
    assert float(W) == 0.25 and float(res) == 0.0


def test_negative_weights_are_recovered():
    z, y, w, _ = _weighted_ce(seed=1)
    z2 = z.detach().clone().requires_grad_()
    tok = F.cross_entropy(z2.reshape(-1, 7), y.reshape(-1), reduction="none", ignore_index=-100)
    (-(w.reshape(-1)) * tok).sum().backward()  # a policy-gradient sign: negative advantage
    W, _ = recover_weights(z2, y, z2.grad)
    assert torch.allclose(W, -w, rtol=0, atol=1e-13)


def test_a_gradient_on_an_ignored_position_is_reported():
    z, y, w, g = _weighted_ce()
    g = g.clone()
    g[0, 4] += 1e-3  # labels[0, 4] is ignored: plain CE gives it no gradient
    W, res = recover_weights(z, y, g)
    assert float(W[0, 4]) == 0.0 and float(res[0, 4]) == 1.0


@pytest.mark.parametrize("kind", ["label_smoothing", "z_loss"])
def test_a_loss_that_is_not_weighted_ce_is_reported(kind):
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(4, 64, generator=gen, requires_grad=True)
    y = torch.randint(0, 64, (4,), generator=gen)
    if kind == "label_smoothing":
        loss = F.cross_entropy(z, y, label_smoothing=0.1)
    else:  # PaLM's z-loss: 1e-4 * (log Z)^2 per token, on top of the mean CE
        loss = F.cross_entropy(z, y) + 1e-4 * (torch.logsumexp(z, -1) ** 2).mean()
    loss.backward()
    _, res = recover_weights(z, y, z.grad)
    # smoothing 0.1 leaves ~0.1, the z-loss ~1.5e-4; float32 plain CE stays near 4e-8
    assert float(res.min()) > 10 * RESIDUAL_TOL


def test_residual_tolerance_follows_the_gradient_dtype():
    assert residual_tol(torch.float32) == residual_tol(torch.float64) == RESIDUAL_TOL
    assert residual_tol(torch.bfloat16) == 4 * 2**-7


def test_recover_weights_errors_name_the_argument():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="grad"):
        recover_weights(z, torch.zeros(2, dtype=torch.long), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="labels"):
        recover_weights(z, torch.zeros(3, dtype=torch.long), z)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        recover_weights(z, torch.tensor([0, 5]), z)


def test_infer_labels_reads_the_target_from_the_gradient():
    z, y, w, g = _weighted_ce(V=11, seed=3)
    # float64; a zero weight is an ignored position too
    expect = torch.where(w != 0, y, -100)
    assert torch.equal(infer_labels(z, g), expect)


def _step(model, batch, optimizer=None):
    logits = model(batch.input_ids, position_ids=batch.position_ids)
    loss = lv.cross_entropy(logits, batch.labels, "mean", shift=True)
    loss.backward()
    if optimizer is not None:
        optimizer.step()
    return loss


def test_probe_on_a_users_own_loop_gives_the_token_mean():
    batch = token_batch([3, 7, 5], seed=0)
    model = TinyCausalLM(TinyConfig())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with probe(model) as rec:  # labels are not passed to the model: read from the gradient
        _step(model, batch, opt)
    assert rec.optimizer_steps == 1 and len(rec.micro_batches) == 1 and rec.unmatched == 0
    mb = rec.micro_batches[0]
    assert mb.labels_inferred and mb.rank == 0 and mb.world_size == 1
    trained = batch.labels != -100  # at the label positions
    assert torch.equal(mb.labels != -100, trained)
    # float32 logits: relative error of the recovered weight ~1e-6 at most (1/15 ~ 0.067)
    assert torch.allclose(rec.W(0), trained.double() / 15, rtol=0, atol=1e-7)
    assert rec.is_cross_entropy()


def test_probe_leaves_training_bit_identical():
    batch = token_batch([4, 9, 2], seed=1)
    runs = []
    for on in (False, True):
        model = TinyCausalLM(TinyConfig(seed=3))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        losses, grads = [], []
        ctx = probe(model) if on else None
        if ctx:
            ctx.__enter__()
        try:
            for _ in range(3):
                opt.zero_grad()
                losses.append(_step(model, batch, opt).detach())
                grads.append(flat_grad(model))
        finally:
            if ctx:
                ctx.__exit__(None, None, None)
        params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        runs.append((torch.stack(losses), torch.stack(grads), params))
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)
    assert ctx.record.optimizer_steps == 3 and [mb.step for mb in ctx.record.micro_batches] == [
        0,
        1,
        2,
    ]


def test_probe_hooks_are_removed_on_exit():
    model = TinyCausalLM(TinyConfig())
    batch = token_batch([3], seed=0)
    with probe(model) as rec:
        _step(model, batch)
    _step(copy.deepcopy(model), batch)
    _step(model, batch)
    assert len(rec.slots) == 1


def test_probe_skips_forwards_without_gradient_and_names_bad_input():
    model = TinyCausalLM(TinyConfig())
    batch = token_batch([3], seed=0)
    with probe(model) as rec:
        with torch.no_grad():
            model(batch.input_ids)
        model(batch.input_ids)  # never backpropagated
    assert rec.micro_batches == [] and rec.unmatched == 1
    with pytest.raises(ValueError, match="step=0"):
        rec.W(0)
    with pytest.raises(TypeError, match="nn.Module"):
        probe("model")

    class Pair(torch.nn.Module):  # an output layout the probe cannot read on its own
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 5)

        def forward(self, x):
            return (x.sum(), self.lin(x))

    pair, x = Pair(), torch.randn(1, 3, 2)
    with pytest.raises(TypeError, match="logits_of"):
        with probe(pair):
            pair(x)
    with probe(pair, logits_of=lambda out: out[1]) as rec:
        F.cross_entropy(pair(x)[1][0], torch.tensor([1, 2, 3])).backward()
    # shift=1: positions 1 and 2 carry the labels 2 and 3 scored by logits 0 and 1
    assert torch.allclose(rec.W(0), torch.tensor([[0.0, 1 / 3, 1 / 3]], dtype=torch.float64))


def test_the_readme_three_lines_give_the_weights_they_state():
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "lv.probe" in b)
    scope = {"lv": lv}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - our own README
    W, batch = scope["rec"].W(0), scope["batch"]
    trained = batch.labels != -100
    # float32 logits: a recovered weight is within ~6e-8 relative of the exact 1/30
    assert torch.allclose(W[trained], torch.full_like(W[trained], 1 / 30), rtol=1e-6, atol=0)
    assert float(W[~trained].abs().max()) == 0.0
