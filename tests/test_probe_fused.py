"""The probe without logits: TRL's fused LM head (log-probs) and a fused loss (the hidden state).

TRL 1.16's default ``SFTTrainer`` step runs for real on a one-layer Llama (GA 2); a chunked
cross-entropy of our own, computed from the last hidden state, stands for Liger-style kernels,
including a deliberately wrong one in the manner of the bug Liger-Kernel pull request 1298 fixed
(https://github.com/linkedin/Liger-Kernel/pull/1298): with ``reduction="none"`` every token's
gradient was scaled by the first token's upstream gradient.
"""

import pytest
import torch
from torch import nn

import lossviz as lv
from lossviz.probe import _ROW_VOCAB, _weights_by_chunks, recover_weights_hidden

pytest.importorskip("trl")

from lossviz.trainers.trl_probe import sft_step  # noqa: E402


def _trained(inputs: list[dict]) -> torch.Tensor:
    """``[sum B, T_max]`` bool: the labels scored after the shift (column 0 never is)."""
    T = max(mb["labels"].shape[1] for mb in inputs)
    rows = []
    for mb in inputs:
        on = mb["labels"] != -100
        on[:, 0] = False
        rows.append(nn.functional.pad(on, (0, T - on.shape[1])))
    return torch.cat(rows)


def test_trl_default_sft_step_gives_every_trained_token_one_over_n():
    # TRL's own defaults (bf16 autocast included): the model returns log-probs, never logits
    run = sft_step(per_device_batch_size=2, ga_steps=2, vias=("auto",), replay_logits=False)
    rec, N = run["records"]["auto"], run["N"]
    assert run["trl"] == "1.16.0" and len(rec.micro_batches) == 2 and rec.optimizer_steps == 1
    assert all(mb.via == "log_probs" for mb in rec.micro_batches)
    W, trained = rec.W(0), _trained(run["inputs"])
    assert int(trained.sum()) == N > 0
    # -dL/dlog p = 1/N in float32: one rounding, ~6e-8 relative
    assert float((W[trained] * N - 1).abs().max()) < 1e-6
    assert float(W[~trained].abs().max()) == 0.0
    assert rec.is_cross_entropy()  # here: TRL's label_mask agrees with the labels


def test_logits_log_probs_and_hidden_state_agree_on_one_trl_step():
    run = sft_step(vias=("log_probs", "hidden"), bf16=False)
    lp, hid, logits = run["records"]["log_probs"], run["records"]["hidden"], run["logits"]
    assert {mb.via for mb in hid.micro_batches} == {"hidden"}
    assert {mb.via for mb in logits.micro_batches} == {"logits"}
    N, trained = run["N"], _trained(run["inputs"])
    ref = trained.double() / N
    for rec in (lp, hid, logits):
        assert float((rec.W(0) - ref).abs().max()) * N < 1e-6
    assert float((lp.W(0) - hid.W(0)).abs().max()) * N < 1e-6
    assert float((lp.W(0) - logits.W(0)).abs().max()) * N < 1e-6
    assert logits.max_residual < 1e-5 and hid.max_residual < 1e-4


class ChunkedCE(torch.autograd.Function):
    """Per-token CE from the hidden state and the head, ``V`` never materialised for all positions.

    ``buggy=True`` scales every token's gradient by the first token's upstream gradient.
    """

    @staticmethod
    def forward(ctx, h, weight, y, buggy):
        loss = torch.zeros(h.shape[0], dtype=h.dtype)
        for i in range(0, h.shape[0], 4):  # 4 positions per chunk
            z = h[i : i + 4] @ weight.T
            t = y[i : i + 4]
            on = t != -100
            tok = torch.logsumexp(z, -1) - z.gather(-1, t.clamp(min=0)[:, None])[:, 0]
            loss[i : i + 4] = torch.where(on, tok, 0.0)
        ctx.save_for_backward(h, weight, y)
        ctx.buggy = buggy
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        h, weight, y = ctx.saved_tensors
        scale = grad_out[:1].expand_as(grad_out) if ctx.buggy else grad_out
        gh, gw = torch.zeros_like(h), torch.zeros_like(weight)
        for i in range(0, h.shape[0], 4):
            z = h[i : i + 4] @ weight.T
            t = y[i : i + 4]
            d = torch.softmax(z, -1)
            d[torch.arange(len(t)), t.clamp(min=0)] -= 1
            d *= (scale[i : i + 4] * (t != -100))[:, None]
            gh[i : i + 4] = d @ weight
            gw += d.T @ h[i : i + 4]
        return gh, gw, None, None


class FusedLM(nn.Module):
    """A causal LM whose forward returns only per-token losses: no logits, no log-probs."""

    def __init__(self, V=40, D=12, buggy=False):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Embedding(V, D), nn.Linear(D, D), nn.Tanh())
        self.head = nn.Linear(D, V, bias=False)
        self.buggy = buggy

    def forward(self, input_ids, labels):
        h = self.body(input_ids)[:, :-1]
        B, T1, D = h.shape
        tok = ChunkedCE.apply(
            h.reshape(-1, D), self.head.weight, labels[:, 1:].reshape(-1), self.buggy
        )
        return {"per_token_loss": tok.view(B, T1)}


@pytest.mark.parametrize("buggy", [False, True])
def test_the_hidden_state_path_catches_a_kernel_that_scales_by_the_first_token(buggy):
    gen = torch.Generator().manual_seed(1)
    lengths = [3, 8, 5]
    ids = torch.randint(0, 40, (3, 9), generator=gen)
    labels = ids.clone()
    for b, n in enumerate(lengths):
        labels[b, n + 1 :] = -100
    model = FusedLM(buggy=buggy)
    with lv.probe(model, hidden=model.body, head=model.head) as rec:
        tok = model(ids, labels=labels)["per_token_loss"]
        # a per-sample mean: upstream gradients 1 / (B n_b) differ from sample to sample
        m = (labels[:, 1:] != -100).double()
        (tok * m / m.sum(1, keepdim=True)).sum().div(3).backward()
    mb = rec.micro_batches[0]
    assert mb.via == "hidden" and mb.max_residual < 1e-4  # the gradient has CE's form either way
    W = rec.W(0)[:, 1:]
    intended = m / m.sum(1, keepdim=True) / 3
    # float32 model: a recovered weight is within ~1e-7 relative; compare relative to the largest
    err = float((W - intended).abs().max()) / float(intended.max())
    if buggy:
        # every token got the first token's weight, 1 / (3 x 3): the probe shows it
        first = 1 / (3 * lengths[0])
        assert float((W[m > 0] - first).abs().max()) / first < 1e-6 and err > 0.5
    else:
        assert err < 1e-6


def test_recover_weights_hidden_by_hand_and_errors():
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    Wh = torch.randn(11, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 11, (2, 5), generator=gen)
    y[1, 2] = -100
    w = torch.rand(2, 5, generator=gen, dtype=torch.float64) * (y != -100)
    z = h @ Wh.T
    tok = nn.functional.cross_entropy(z.reshape(-1, 11), y.reshape(-1), reduction="none")
    (tok * w.reshape(-1)).sum().backward()
    W, res = recover_weights_hidden(h.detach(), Wh, y, h.grad)
    assert float((W - w).abs().max()) < 1e-12 and float(res.max()) < 1e-10
    with pytest.raises(ValueError, match="head_weight"):
        recover_weights_hidden(h.detach(), Wh.T, y, h.grad)
    with pytest.raises(ValueError, match="labels"):
        recover_weights_hidden(h.detach(), Wh, y[:, :3], h.grad)


def test_probe_via_hidden_names_what_it_needs():
    with pytest.raises(TypeError, match="hidden="):
        lv.probe(nn.Linear(2, 3), via="hidden").__enter__()
    with pytest.raises(ValueError, match="via"):
        lv.probe(nn.Linear(2, 3), via="loss")


def test_the_one_row_path_matches_the_chunked_one():
    # from V = 8192 each position is its own chunk: the same numbers as the batched passes
    V = _ROW_VOCAB + 5
    gen = torch.Generator().manual_seed(4)
    z = (3 * torch.randn(6, V, generator=gen)).requires_grad_()
    y = torch.randint(0, V, (6,), generator=gen)
    y[2] = -100
    w = torch.tensor([0.5, 2.0, 0.0, -1.0, 1e-3, 0.25])  # -1: a negative weight (RL)
    tok = nn.functional.cross_entropy(z, y, reduction="none", ignore_index=-100)
    (tok * w).sum().backward()
    rows = _weights_by_chunks(z.detach(), z.grad, None, -100)
    assert rows[0].tolist() == torch.where(w != 0, y, -100).tolist()  # labels read from g
    for tgt in (y, None):
        t, W, res = _weights_by_chunks(z.detach(), z.grad, tgt, -100)
        # float32: W within ~1e-7 relative of the exact weight
        assert float(((W - w.double()).abs() / w.double().abs().clamp(min=1e-3)).max()) < 1e-6
        assert float(res.max()) < 1e-5
    smooth = z.detach().clone().requires_grad_()
    nn.functional.cross_entropy(smooth, y.clamp(min=0), label_smoothing=0.1).backward()
    assert (
        float(_weights_by_chunks(smooth.detach(), smooth.grad, y.clamp(min=0), -100)[2].min())
        > 1e-3
    )
