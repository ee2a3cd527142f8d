"""Cross-entropy by hand: log-softmax, then gather the log-probability of each label.

The per-token loss is ``l[b, t] = -log softmax(logits[b, t])[labels[b, t]]``; positions whose label is
``ignore_index`` get a loss of exactly 0 (and no gradient). Every scalar loss in lossviz is a weighted sum
of these numbers (see :mod:`lossviz.reductions`).
"""

from __future__ import annotations

import torch

from .checks import float_dtype
from .reductions import reduce

__all__ = ["token_losses", "cross_entropy", "shift_labels", "check_inputs"]


def shift_labels(labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Causal shift: position t is trained to predict token t+1; the last position gets no label.

    ``labels: [..., T] -> [..., T]``; ``out[..., t] = labels[..., t + 1]``, ``out[..., T-1] = ignore_index``.
    This is how transformers' ``ForCausalLMLoss`` aligns labels (pad one ``ignore_index``, drop the first).
    """
    pad = torch.full_like(labels[..., :1], ignore_index)
    return torch.cat([labels[..., 1:], pad], dim=-1)


def check_inputs(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> None:
    """Raise a ``TypeError``/``ValueError`` that names the problem and the fix, or return None."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"labels must be a torch.Tensor of token ids, got {type(labels).__name__}; "
            "wrap it with torch.tensor(..., dtype=torch.long)"
        )
    if not logits.is_floating_point():
        raise TypeError(
            f"logits must be floating point, got {logits.dtype}; convert with logits.float()"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(
            f"labels must hold integer token ids, got {labels.dtype}; convert with labels.long()"
        )
    if logits.dim() < 2:
        raise ValueError(
            f"logits must have a vocabulary dimension last ([N, V] or [B, T, V]), "
            f"got shape {tuple(logits.shape)}"
        )
    if tuple(logits.shape[:-1]) != tuple(labels.shape):
        raise ValueError(
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not match: "
            f"labels must have shape logits.shape[:-1] = {tuple(logits.shape[:-1])}"
        )
    if labels.numel() == 0 or logits.shape[-1] == 0:
        raise ValueError(
            f"empty batch: logits {tuple(logits.shape)}, labels {tuple(labels.shape)}; "
            "pass at least one token and a vocabulary of at least one entry"
        )
    vocab = logits.shape[-1]
    labels = labels.long()  # uint8 156 == -100 would be True: compare in int64
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= vocab))
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueError(
            f"label {int(labels[where])} at index {where} is out of range for a vocabulary of "
            f"{vocab}: labels must lie in [0, {vocab - 1}] or equal ignore_index={ignore_index}"
        )
    _check_finite(logits)


def _check_finite(logits: torch.Tensor) -> None:
    # One summing pass instead of isfinite(): no [B, T, V] bool temporary. -inf alone (a masked
    # vocabulary entry) is allowed, as torch allows it; NaN and +inf are not.
    if bool(torch.isfinite(logits.detach().sum())):
        return
    bad = torch.isnan(logits.detach()) | (logits.detach() == float("inf"))
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueError(
            f"logits hold a non-finite value ({float(logits.detach()[where])}) at index {where}; "
            "check the model output (overflow in float16?) before computing the loss"
        )


def token_losses(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    shift: bool = False,
) -> torch.Tensor:
    """Per-token cross-entropy ``l = -log_softmax(logits).gather(labels)``, 0 where ignored.

    ``logits: [..., V]``, ``labels: [...]`` (``[N, V]``/``[N]`` or ``[B, T, V]``/``[B, T]``) -> ``[...]``
    shaped like ``labels``, in the dtype of ``logits``. With ``shift=True`` position t is scored on
    token t+1 (the last position gets no loss), as a causal language model is trained.
    Equal to ``F.cross_entropy(logits, labels, reduction="none")`` in values and gradients.
    """
    check_inputs(logits, labels, ignore_index)
    labels = labels.long()  # gather indexes with int64; int8/16/32 and uint8 ids convert exactly
    if shift:
        labels = shift_labels(labels, ignore_index)
    keep = labels != ignore_index
    safe = torch.where(keep, labels, torch.zeros_like(labels))
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(keep, -picked, torch.zeros_like(picked))


def cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
    shift: bool = False,
    mask: torch.Tensor | None = None,
    **params,
) -> torch.Tensor:
    """Cross-entropy under any reduction: ``none`` gives ``l``, every other name ``sum(W * l)``.

    ``none``/``sum``/``mean`` equal ``torch.nn.functional.cross_entropy`` (values and gradients);
    every name in :data:`lossviz.REDUCTIONS` is accepted too, with its ``params``
    (e.g. ``max_length`` for ``constant_norm``). ``mask: [B, T]`` optionally gives each token a
    weight (a prompt-loss weight, say); it is multiplied with ``labels != ignore_index``.
    A 1-D ``labels: [N]`` is treated as one sample of N tokens.
    """
    losses = token_losses(logits, labels, ignore_index=ignore_index, shift=shift)
    if reduction == "none":
        if mask is not None or params:
            raise ValueError(
                "reduction='none' takes no mask or reduction parameters; "
                "multiply the returned losses by your mask instead"
            )
        return losses
    labels = labels.long()  # checked by token_losses above; compare in int64 (uint8 wraps -100)
    trained = labels if not shift else shift_labels(labels, ignore_index)
    # the dtype rule: counts and weights in float32 (float64 with float64 logits), never float16
    dtype = float_dtype(losses.dtype)
    weight = (trained != ignore_index).to(dtype)
    if mask is not None:
        if isinstance(mask, (list, tuple)):
            mask = torch.as_tensor(mask, dtype=dtype)
        if not isinstance(mask, torch.Tensor):
            raise TypeError(
                f"mask must be a torch.Tensor shaped like labels, got {type(mask).__name__}"
            )
        if tuple(mask.shape) != tuple(labels.shape):
            raise ValueError(
                f"mask {tuple(mask.shape)} must have the shape of labels {tuple(labels.shape)}"
            )
        weight = weight * mask.to(dtype)
    if losses.dim() == 1:
        return reduce(losses.unsqueeze(0), weight.unsqueeze(0), reduction, **params)
    if losses.dim() != 2:
        losses, weight = losses.reshape(-1, losses.shape[-1]), weight.reshape(-1, weight.shape[-1])
    return reduce(losses, weight, reduction, **params)
