"""What changes in a token's gradient under label smoothing, z-loss and DFT, read with the W lens.

For a weighted cross-entropy ``L = sum W * l`` the gradient with respect to the logits of one position
is ``dL/dlogits[b, t] = W[b, t] * (softmax - onehot(y))``: one number per token times a fixed direction.
A probe that reads ``W`` back from the logits' gradient (:func:`read_weight`) recovers it exactly. Three
losses users switch on change that picture in two different ways:

* DFT (Wu et al. 2025, arXiv 2508.05629; TRL 1.16 ``SFTConfig(loss_type="dft")``) multiplies each
  token's loss by the model's own probability of its label, detached: ``l_dft = -sg(p_y) * log p_y``.
  The direction stays ``softmax - onehot``; only the weight changes, to ``W * p_y``: still a W.
* Label smoothing (``F.cross_entropy(label_smoothing=eps)``) trains toward ``(1 - eps) * onehot + eps / V``:
  the gradient is ``W * (softmax - (1 - eps) onehot - eps / V)``, a different direction.
* z-loss (PaLM, Chowdhery et al. 2022, arXiv 2204.02311) adds ``coef * logsumexp(logits)^2`` per token:
  its gradient ``2 coef * lse * softmax`` pushes every logit down, whatever the label.

For the last two the probe's read-out is no longer the whole gradient: :func:`read_weight` returns
the best-fitting weight and the part of the gradient that no weight explains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .cross_entropy import check_inputs

__all__ = [
    "ce_logit_grad",
    "dft_losses",
    "dft_weights",
    "label_smoothing_logit_grad",
    "label_smoothing_losses",
    "read_weight",
    "z_loss",
    "z_loss_logit_grad",
]


def _check_eps(eps: float) -> None:
    if isinstance(eps, bool) or not 0.0 <= eps <= 1.0:
        raise ValueError(f"label smoothing must lie in [0, 1], got {eps!r}")


def ce_logit_grad(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``d(-log p_y)/dlogits = softmax(logits) - onehot(y)``: ``[..., V]``, ``[...]`` -> ``[..., V]``."""
    check_inputs(logits, labels)
    return torch.softmax(logits, dim=-1) - F.one_hot(labels, logits.shape[-1]).to(logits.dtype)


def label_smoothing_losses(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """``(1 - eps) * (-log p_y) + eps * mean_v(-log p_v)`` per token: ``[..., V]``, ``[...]`` -> ``[...]``.

    Equals ``F.cross_entropy(logits, labels, label_smoothing=eps, reduction="none")``.
    """
    check_inputs(logits, labels)
    _check_eps(eps)
    log_p = torch.log_softmax(logits, dim=-1)
    nll = -log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (1 - eps) * nll + eps * (-log_p.mean(dim=-1))


def label_smoothing_logit_grad(
    logits: torch.Tensor, labels: torch.Tensor, eps: float
) -> torch.Tensor:
    """``softmax - ((1 - eps) * onehot(y) + eps / V)``: the gradient of one smoothed token, ``[..., V]``."""
    _check_eps(eps)
    vocab = logits.shape[-1]
    return ce_logit_grad(logits, labels) + eps * (
        F.one_hot(labels, vocab).to(logits.dtype) - 1.0 / vocab
    )


def z_loss(logits: torch.Tensor, coef: float = 1e-4) -> torch.Tensor:
    """PaLM's auxiliary loss per token ``coef * logsumexp(logits)^2``: ``[..., V]`` -> ``[...]``."""
    if not coef >= 0:
        raise ValueError(f"z-loss coef must be >= 0, got {coef!r}")
    return coef * torch.logsumexp(logits, dim=-1) ** 2


def z_loss_logit_grad(logits: torch.Tensor, coef: float = 1e-4) -> torch.Tensor:
    """``2 * coef * logsumexp(logits) * softmax(logits)``: the z-loss gradient, ``[..., V]``."""
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    return 2 * coef * lse * torch.softmax(logits, dim=-1)


def dft_losses(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """DFT per token ``-sg(p_y) * log p_y`` (0 where ignored): ``[..., V]``, ``[...]`` -> ``[...]``.

    TRL 1.16 ``SFTTrainer`` (``loss_type="dft"``): ``per_token_loss * log_probs.exp().detach()``, then
    the sum divided by the number of trained tokens (or ``num_items_in_batch``).
    """
    check_inputs(logits, labels, ignore_index)
    keep = labels != ignore_index
    safe = torch.where(keep, labels, torch.zeros_like(labels))
    log_py = torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(keep, -log_py * log_py.detach().exp(), torch.zeros_like(log_py))


def dft_weights(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """DFT as a weight matrix on the plain token CE: ``W = m * p_y / N`` (detached), ``[B, T]``.

    ``sum(W * l)`` with ``l`` the token cross-entropy has the value and the gradient of TRL's DFT loss
    (token mean over the ``N`` trained tokens).
    """
    check_inputs(logits, labels, ignore_index)
    keep = labels != ignore_index
    n = int(keep.sum())
    if n == 0:
        raise ValueError("every label is ignore_index: DFT's token mean is 0/0")
    safe = torch.where(keep, labels, torch.zeros_like(labels))
    p_y = torch.softmax(logits.detach(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(keep, p_y, torch.zeros_like(p_y)) / n


def read_weight(
    logit_grad: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a CE probe reads from a gradient: ``(w [...], unexplained [...])`` per token.

    ``w`` is the least-squares weight of the CE direction ``d = softmax - onehot(y)``,
    ``w = <g, d> / <d, d>``, and ``unexplained = |g - w d| / |g|`` the relative size of what remains
    (0 when the gradient is a weighted CE gradient; 0 for a zero gradient). Shapes: ``[..., V]`` in.
    """
    if tuple(logit_grad.shape) != tuple(logits.shape):
        raise ValueError(
            f"logit_grad {tuple(logit_grad.shape)} must have the shape of logits {tuple(logits.shape)}"
        )
    d = ce_logit_grad(logits.detach(), labels)
    w = (logit_grad * d).sum(-1) / (d * d).sum(-1).clamp_min(torch.finfo(d.dtype).tiny)
    rest = (logit_grad - w.unsqueeze(-1) * d).norm(dim=-1)
    size = logit_grad.norm(dim=-1)
    return w, torch.where(size > 0, rest / size.clamp_min(torch.finfo(d.dtype).tiny), 0.0 * size)
