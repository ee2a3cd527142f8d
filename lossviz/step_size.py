"""How the scale of a loss becomes the size of a step: SGD follows it, Adam divides it out, clipping caps it.

``sum = N * mean`` (N = trained tokens of the batch), so the sum's gradient is N times the mean's.
What a learning rate tuned for one means for the other depends on the optimizer:

- SGD steps ``-lr * g``: N times larger under ``sum``, and N changes from batch to batch;
- Adam(W) steps ``-lr * m / (sqrt(v) + eps)``: a *constant* factor c scales m by c and sqrt(v) by c,
  so it cancels (up to ``eps``); a factor that changes with every batch does not cancel: each
  batch's gradient enters m and v weighted by its own N;
- clipping (``max_grad_norm``) rescales any gradient longer than the cap to the cap: the sum's
  norm is N times the mean's, so it is clipped on almost every step and its scale is lost.

:func:`train_steps` runs a few optimizer steps of :class:`lossviz.model.TinyCausalLM` on the same
batches from the same initial weights, so two runs differ only in the loss and the optimizer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .cross_entropy import cross_entropy
from .model import TinyCausalLM, TinyConfig
from .step_gradients import flat_grad, token_batch

__all__ = ["StepLog", "OPTIMIZERS", "batch_lengths", "train_steps"]

OPTIMIZERS = ("sgd", "adamw")
STEP_REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class StepLog:
    """What :func:`train_steps` saw at each step k (lists of length K) and the final weights.

    ``tokens[k]``: N of batch k; ``grad_norms[k]``: the gradient's L2 norm before clipping;
    ``clipped[k]``: whether clipping shortened it; ``update_norms[k]``: ``|theta_{k+1} - theta_k|``;
    ``start``, ``params``: the flattened weights ``[P]`` before the first and after the last step.
    """

    tokens: list[int]
    grad_norms: list[float]
    clipped: list[bool]
    update_norms: list[float]
    start: torch.Tensor
    params: torch.Tensor


def batch_lengths(
    steps: int, batch_size: int = 4, low: int = 2, high: int = 40, seed: int = 0
) -> list[list[int]]:
    """``steps`` batches of ``batch_size`` lengths drawn uniformly from ``[low, high]``; seeded."""
    for name, value in (("steps", steps), ("batch_size", batch_size), ("low", low)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(high, int) or high < low:
        raise ValueError(f"high must be an integer >= low={low}, got {high!r}")
    rng = random.Random(seed)
    return [[rng.randint(low, high) for _ in range(batch_size)] for _ in range(steps)]


def _check(reduction: str, optimizer: str, lr: float, scale: float, max_grad_norm) -> None:
    if reduction not in STEP_REDUCTIONS:
        raise ValueError(f"reduction must be one of {STEP_REDUCTIONS}, got {reduction!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    for name, value in (("lr", lr), ("scale", scale)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if max_grad_norm is not None and (
        not isinstance(max_grad_norm, int | float)
        or not math.isfinite(max_grad_norm)
        or max_grad_norm <= 0
    ):
        raise ValueError(f"max_grad_norm must be None (no clipping) or > 0, got {max_grad_norm!r}")


def train_steps(
    lengths_per_step: Sequence[Sequence[int]],
    *,
    reduction: str = "mean",
    optimizer: str = "sgd",
    lr: float = 1e-2,
    scale: float = 1.0,
    max_grad_norm: float | None = None,
    seed: int = 0,
) -> StepLog:
    """Train the tiny model one step per batch on ``scale * loss`` and log every step.

    Batch k holds random tokens with ``lengths_per_step[k][b]`` trained tokens in sample b
    (:func:`lossviz.step_gradients.token_batch`, seed ``seed + k``); the initial weights depend on
    ``seed`` only, so runs that differ in ``reduction`` (``"mean"``: ``sum(m*l)/N``, ``"sum"``:
    ``sum(m*l)``), ``optimizer`` (``"sgd"``, ``"adamw"`` with weight decay 0 and torch's default
    betas and eps), ``scale`` or ``max_grad_norm`` (clip the total L2 norm, as transformers'
    Trainer does) see the same data from the same start.
    """
    _check(reduction, optimizer, lr, scale, max_grad_norm)
    if len(lengths_per_step) == 0:
        raise ValueError("lengths_per_step is empty: give at least one batch of lengths")
    batches = [token_batch(lengths, seed=seed + k) for k, lengths in enumerate(lengths_per_step)]
    model = TinyCausalLM(TinyConfig(seed=seed))
    params = list(model.parameters())
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    start = torch.cat([p.detach().reshape(-1) for p in params])
    before = start.clone()
    tokens, grad_norms, clipped, update_norms = [], [], [], []
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        logits = model(batch.input_ids, batch.position_ids, batch.sample_ids)
        loss = scale * cross_entropy(logits, batch.labels, reduction, shift=True)
        loss.backward()
        norm = float(flat_grad(model).norm())
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in params])
        tokens.append(int(batch.loss_mask().sum()))
        grad_norms.append(norm)
        clipped.append(max_grad_norm is not None and norm > max_grad_norm)
        update_norms.append(float((after - before).norm()))
        before = after
    return StepLog(tokens, grad_norms, clipped, update_norms, start, before)
