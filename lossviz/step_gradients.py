"""The gradient of one optimizer step, three ways: full batch, a real accumulation loop, and ``W``.

The claim of :mod:`lossviz.accumulation` is about gradients, not only loss values: a GA loop that
runs one forward/backward per micro-batch produces exactly the gradient of ``sum(W * l)`` on the
full batch, with ``W = accumulation_weights(...)``. These functions compute both on
:class:`lossviz.model.TinyCausalLM` (built from a config, nothing downloaded), so a test or a
notebook can put the numbers side by side.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from .accumulation import accumulation_weights, micro_batch_weights
from .batching import Batch, _check_lengths, pad
from .cross_entropy import token_losses
from .devices import torch_threads
from .model import TinyCausalLM, TinyConfig
from .reductions import weights
from .step_shape import deal

__all__ = [
    "token_batch",
    "flat_grad",
    "weighted_grad",
    "rank_grad",
    "accumulated_grad",
    "ga_gradient_distances",
    "gradient_gap",
]


def token_batch(lengths: Sequence[int], *, vocab_size: int = 64, seed: int = 0) -> Batch:
    """A right-padded :class:`Batch` of random tokens in which sample b trains ``lengths[b]`` tokens.

    Sample b holds ``lengths[b] + 1`` tokens (the first one has no label), so
    ``batch.loss_mask().sum(1) == lengths``; the tokens depend only on ``seed``.
    """
    lengths = _check_lengths(lengths, allow_zero=False)
    gen = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(0, vocab_size, (n + 1,), generator=gen).tolist() for n in lengths]
    return pad(seqs)


def flat_grad(model: nn.Module) -> torch.Tensor:
    """Every parameter's ``.grad`` flattened into one vector ``[P]`` (zeros where none)."""
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for p in model.parameters()
        ]
    )


def _rows_losses(model: nn.Module, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
    """Per-token losses ``[len(rows), T]`` of a forward pass over those rows only.

    The rows are cut to their own longest sample first (dynamic padding, as a collator pads each
    micro-batch); the loss of a token does not depend on padding after it, and the cut columns get
    a loss of 0, so the result keeps the batch's width ``T``.
    """
    dev = next(model.parameters()).device
    owned = (batch.sample_ids[rows] >= 0).any(dim=0).nonzero()
    width = int(owned.max()) + 1 if owned.numel() else 1
    cut = (slice(None), slice(0, width))
    logits = model(
        batch.input_ids[rows][cut].to(dev),
        position_ids=batch.position_ids[rows][cut].to(dev),
        sample_ids=batch.sample_ids[rows][cut].to(dev),
    )
    losses = token_losses(logits, batch.labels[rows][cut].to(dev), shift=True)
    return torch.nn.functional.pad(losses, (0, batch.labels.shape[1] - width))


def weighted_grad(model: nn.Module, batch: Batch, W: torch.Tensor) -> torch.Tensor:
    """Gradient ``[P]`` of ``sum(W * l)`` from one forward pass over the whole batch."""
    model.zero_grad(set_to_none=True)
    rows = torch.arange(batch.input_ids.shape[0])
    losses = _rows_losses(model, batch, rows)
    (W.to(losses) * losses).sum().backward()
    return flat_grad(model)


def rank_grad(
    model: nn.Module,
    batch: Batch,
    rows: Sequence[Sequence[int]],
    local: Sequence[torch.Tensor],
    *,
    no_sync: Callable[[], AbstractContextManager] | None = None,
    losses_out: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Gradient ``[P]`` of one rank's GA loop: ``sum(local[k] * l[rows[k]]).backward()`` per step k.

    ``rows[k]`` are the samples of micro-batch k and ``local[k]: [len(rows[k]), T]`` their weights
    (one rank of :func:`lossviz.accumulation.micro_batch_weights`); ``.grad`` accumulates over the
    steps from zero. Under DDP pass ``no_sync=ddp_model.no_sync``: every step but the last runs
    without communication, so the gradients are all-reduced (averaged over ranks) once, and an empty
    last micro-batch still joins that all-reduce with a zero loss. ``losses_out``, when given,
    receives each step's detached token losses ``[len(rows[k]), T]`` (for logging).
    """
    model.zero_grad(set_to_none=True)
    last = len(rows) - 1
    for k, (step_rows, w) in enumerate(zip(rows, local, strict=True)):
        sync = no_sync is None or k == last
        with nullcontext() if sync else no_sync():
            if step_rows:
                losses = _rows_losses(model, batch, torch.tensor(step_rows, dtype=torch.long))
                (w.to(losses) * losses).sum().backward()
                if losses_out is not None:
                    losses_out.append(losses.detach())
            elif no_sync is not None and k == last:  # nothing to add, but DDP must all-reduce
                first = next(r for r in rows if r)[:1]
                (_rows_losses(model, batch, torch.tensor(first)).sum() * 0.0).backward()
    return flat_grad(getattr(model, "module", model))


def accumulated_grad(
    model: nn.Module,
    batch: Batch,
    *,
    ga_steps: int,
    world_size: int = 1,
    reduction: str = "token_mean",
    normalize: str = "global",
    **params,
) -> torch.Tensor:
    """Gradient ``[P]`` of a real GA loop: one forward/backward per micro-batch, grads accumulate.

    Each rank's loop (:func:`rank_grad`) starts from zero gradients; the result is the mean over
    ranks, which is what DDP's all-reduce computes (here the ranks run one after another in this
    process; see :mod:`lossviz.distributed` for real processes).
    """
    mask = batch.loss_mask()
    plan = deal(mask.shape[0], ga_steps=ga_steps, world_size=world_size)
    local = micro_batch_weights(mask, plan, reduction=reduction, normalize=normalize, **params)
    total = None
    for rank_plan, rank_w in zip(plan, local, strict=True):
        g = rank_grad(model, batch, rank_plan, rank_w)
        total = g if total is None else total + g
    return total / world_size


def _l2(x: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(x.double()))


def ga_gradient_distances(
    lengths: Sequence[int],
    *,
    ga_steps: int,
    world_size: int = 1,
    normalizations: Sequence[str] = ("global", "naive"),
    reduction: str = "token_mean",
    config: TinyConfig | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    threads: int | None = 1,
) -> dict[str, float]:
    """``{normalize: ||g_GA - g_full||_2}``: each GA loop's gradient distance to the full batch.

    A fresh :class:`TinyCausalLM` (``config``, default ``TinyConfig``) on a :func:`token_batch` of
    ``lengths``; ``g_full`` is the gradient of ``sum(weights(mask, reduction) * l)`` from one
    forward pass, ``g_GA`` is :func:`accumulated_grad` with that normalization. ``global`` gives
    float rounding only; ``naive`` the accumulation bug. ``threads`` (default 1: tiny tensors, where
    more threads only contend) is restored afterwards; ``None`` keeps torch's setting.
    """
    cfg = config or TinyConfig(context_length=max(256, max(lengths) + 1))
    batch = token_batch(lengths, vocab_size=cfg.vocab_size, seed=seed)
    with torch_threads(threads):
        # a model of its own per call: its .grad is written here, so nothing shared is mutated
        model = TinyCausalLM(cfg).to(device)
        full = weighted_grad(model, batch, weights(batch.loss_mask(), reduction))
        split = {"ga_steps": ga_steps, "world_size": world_size, "reduction": reduction}
        return {
            n: _l2(accumulated_grad(model, batch, normalize=n, **split) - full)
            for n in dict.fromkeys(normalizations)
        }


def gradient_gap(
    lengths: Sequence[int],
    *,
    ga_steps: int,
    world_size: int = 1,
    reduction: str = "token_mean",
    device: str | torch.device = "cpu",
    config: TinyConfig | None = None,
    seed: int = 0,
    reference: bool = True,
) -> dict[str, float]:
    """How far each GA gradient lies from the full-batch one on a tiny model, and what W predicts.

    Returns max-abs and L2 distances: ``global`` and ``naive`` GA loops vs the float32 full batch,
    naive GA vs the gradient of ``sum(W_naive * l)`` (the prediction), and, with ``reference``,
    each float32 gradient vs a float64 full-batch reference (float rounding alone vs the bug).
    """
    cfg = config or TinyConfig(context_length=max(256, max(lengths) + 1))
    batch = token_batch(lengths, vocab_size=cfg.vocab_size, seed=seed)
    model = TinyCausalLM(cfg).to(device)
    mask = batch.loss_mask()
    split = {"ga_steps": ga_steps, "world_size": world_size, "reduction": reduction}
    full = weighted_grad(model, batch, weights(mask, reduction))
    ga_global = accumulated_grad(model, batch, normalize="global", **split)
    ga_naive = accumulated_grad(model, batch, normalize="naive", **split)
    w_naive = accumulation_weights(mask, normalize="naive", **split)
    predicted = weighted_grad(model, batch, w_naive)
    out = {
        "num_params": full.numel(),
        "full_l2": _l2(full),
        "global_vs_full_max": float((ga_global - full).abs().max()),
        "global_vs_full_l2": _l2(ga_global - full),
        "naive_vs_full_max": float((ga_naive - full).abs().max()),
        "naive_vs_full_l2": _l2(ga_naive - full),
        "predicted_vs_full_max": float((predicted - full).abs().max()),
        "naive_vs_predicted_max": float((ga_naive - predicted).abs().max()),
    }
    if reference:
        ref_model = copy.deepcopy(model).double()
        ref = weighted_grad(ref_model, batch, weights(mask, reduction).double())
        out["full32_vs_full64_l2"] = _l2(full.double() - ref.double())
        out["global32_vs_full64_l2"] = _l2(ga_global.double() - ref.double())
        out["naive32_vs_full64_l2"] = _l2(ga_naive.double() - ref.double())
    return out
