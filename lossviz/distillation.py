"""Distillation KL through the W lens: ``kl_div``'s reductions are weight matrices over positions.

A distillation loss compares the student's next-token distribution with the teacher's at every
position: ``kl[b, t] = sum_v p_teacher(v) * (log p_teacher(v) - log p_student(v))`` (forward KL, as in
Hinton et al. 2015, "Distilling the Knowledge in a Neural Network", arXiv 1503.02531). The scalar
loss is again ``sum W * kl``; ``torch.nn.functional.kl_div`` picks W by its ``reduction`` and by the
shape of the tensor it is given (``[B, T, V]``, or flattened to ``[B*T, V]``):

=======================  ==============================  =========================================
reduction                W[b, t]                         vs the token mean
=======================  ==============================  =========================================
``token_mean``           m / N                           1 (what a per-token loss means)
``batchmean`` [B, T, V]  1 / B                           T times larger (no padding)
``batchmean`` [B*T, V]   1 / (B*T)                       equal without padding
``mean``                 1 / (B*T*V)                     V times smaller: averages over the vocabulary
``sum``                  1                               N times larger
=======================  ==============================  =========================================

``kl_div`` has no mask: it counts every position it is given, padding included (the padded-mean bug
again), so ``m = 1`` everywhere for its rows; ``token_mean`` is the masked per-token mean.
"""

from __future__ import annotations

import torch

__all__ = ["KL_REDUCTIONS", "kl_loss", "kl_weights", "token_kl"]

KL_REDUCTIONS = ("token_mean", "batchmean", "batchmean_flat", "mean", "sum")


def token_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """Forward KL per position ``sum_v p_t (log p_t - log p_s)``: ``[..., V]`` logits -> ``[...]``.

    ``temperature`` softens both distributions (Hinton et al.); the gradient then shrinks as
    ``1 / temperature^2``, which is why distillation losses are often multiplied by it.
    """
    if tuple(student_logits.shape) != tuple(teacher_logits.shape):
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} "
            "logits must have one shape [..., V]"
        )
    if isinstance(temperature, bool) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    log_s = torch.log_softmax(student_logits / temperature, dim=-1)
    log_t = torch.log_softmax(teacher_logits / temperature, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=-1)


def kl_weights(mask: torch.Tensor, reduction: str, vocab_size: int) -> torch.Tensor:
    """``W: [B, T]`` so that ``sum(W * kl)`` is the KL loss under ``reduction`` (see the table above).

    ``mask: [B, T]`` marks the positions a per-token mean counts; the ``kl_div`` reductions count
    every position (their W is not multiplied by the mask). ``vocab_size`` is V (for ``mean``).
    """
    if mask.dim() != 2:
        raise ValueError(f"mask must be [B, T], got shape {tuple(mask.shape)}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    batch, length = mask.shape
    ones = torch.ones(mask.shape, dtype=torch.float64)
    if reduction == "token_mean":
        n = float(mask.sum())
        if n <= 0:
            raise ValueError("token_mean over a mask with no trained position is 0/0")
        return mask.to(torch.float64) / n
    scale = {
        "batchmean": batch,
        "batchmean_flat": batch * length,
        "mean": batch * length * vocab_size,
        "sum": 1,
    }.get(reduction)
    if scale is None:
        raise ValueError(
            f"unknown KL reduction {reduction!r}; choose one of {', '.join(KL_REDUCTIONS)}"
        )
    return ones / scale


def kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    reduction: str = "token_mean",
    *,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``sum W * token_kl``: ``[B, T, V]`` logits -> scalar, ``W = kl_weights(mask, reduction, V)``.

    ``batchmean``, ``mean`` and ``sum`` equal ``F.kl_div(log_softmax(student), log_softmax(teacher),
    reduction=..., log_target=True)`` on the ``[B, T, V]`` tensors, ``batchmean_flat`` on them
    flattened to ``[B*T, V]``; ``mask`` (default: every position) matters for ``token_mean`` only.
    """
    if student_logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got shape {tuple(student_logits.shape)}")
    kl = token_kl(student_logits, teacher_logits, temperature=temperature)
    if mask is None:
        mask = torch.ones(kl.shape, dtype=kl.dtype)
    if tuple(mask.shape) != tuple(kl.shape):
        raise ValueError(f"mask {tuple(mask.shape)} must be [B, T] = {tuple(kl.shape)}")
    w = kl_weights(mask, reduction, student_logits.shape[-1]).to(kl)
    return (w * kl).sum()
