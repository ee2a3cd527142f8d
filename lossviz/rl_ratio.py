"""How each TRL loss type turns the importance ratio into a gradient: the gate ``g[b, t]``.

:mod:`lossviz.rl` gives each loss type's aggregation weight ``W[b, t]``. Off policy the ratio
``r = exp(logp - logp_old)`` enters too, and every TRL 1.16.0 loss type has the same shape of
gradient with respect to a token's log-prob::

    dL / d logp[b, t] = -A_b * W[b, t] * g[b, t]

with the gate ``g`` (measured through ``GRPOTrainer._compute_loss`` in tests/test_trl_grpo.py):

================================= =====================================================================
loss type                         g[b, t]
================================= =====================================================================
grpo, bnpo, dr_grpo, dapo, luspo  ``r``, or 0 where PPO's clip acts: ``A > 0`` and ``r > 1 + eps_high``,
                                  ``A < 0`` and ``r < 1 - eps``, or (``delta`` set) ``A < 0``, ``r > delta``
cispo                             ``min(r, eps_high)`` (detached; ``eps_high`` defaults to ``eps = 0.2``)
sapo                              ``4 s (1 - s) r``, ``s = sigmoid(tau (r - 1))``, ``tau`` by the sign of A
vespo                             ``phi(w) = exp(lam + k log w - lam w)``, ``w = exp(sum_t m log r)``
================================= =====================================================================

At ``r = 1`` every gate is 1 except ``cispo``'s, which is ``min(1, eps_high)``. With
``importance_sampling_level="sequence"`` (GSPO) ``r`` is the response's ``exp(mean_t log r)``; the
``1/n_b`` of its derivative cancels the ``n_b`` tokens the loss broadcasts it over, so the table holds
with that ``r``. ``vespo`` always uses the summed token log-ratios.
"""

from __future__ import annotations

import math

import torch

from .rl import RLMode, mode_weights, resolve_mode

__all__ = ["GATED", "GATE_FORMULAS", "gate", "policy_gradient", "ratio_of"]

# the loss types whose gate is PPO's clip; the others are named in gate()
GATED = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "gspo")
CLIP = "r, 0 where clipped"
GATE_FORMULAS = {
    **{name: CLIP for name in GATED},
    "gspo": "r_seq = exp(mean_t log r), 0 where clipped",
    "cispo": "min(r, eps_high)",
    "sapo": "4 s(1-s) r, s = sigmoid(tau (r-1))",
    "vespo": "exp(lam + k log w - lam w), w = exp(sum_t log r)",
}


def ratio_of(log_ratio: torch.Tensor, mask: torch.Tensor, level: str = "token") -> torch.Tensor:
    """``r: [B, T]``: ``exp(log_ratio)`` per token, or each response's ``exp(mean_t log_ratio)``."""
    if level == "token":
        return torch.exp(log_ratio)
    if level != "sequence":
        raise ValueError(f"level must be 'token' or 'sequence', got {level!r}")
    n = mask.sum(dim=-1, keepdim=True).clamp(min=1.0)
    return torch.exp((log_ratio * mask).sum(dim=-1, keepdim=True) / n).expand_as(log_ratio)


def gate(
    mode: str | RLMode,
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    delta: float | None = None,
    level: str | None = None,
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    vespo_k_pos: float = 2.0,
    vespo_lambda_pos: float = 3.0,
    vespo_k_neg: float = 3.0,
    vespo_lambda_neg: float = 2.0,
) -> torch.Tensor:
    """``g: [B, T]``, the factor a TRL loss type puts on ``-A_b * W[b, t]`` at log-ratio ``log_ratio``.

    ``log_ratio, mask: [B, T]``, ``advantages: [B]``; the keyword defaults are ``GRPOConfig``'s.
    ``level``: ``importance_sampling_level`` (``"sequence"`` for ``gspo``, else ``"token"``).
    """
    m = resolve_mode(mode)
    if m.project != "TRL":
        raise ValueError(f"gates are TRL's loss types; {m.key} has none (its gate is the caller's)")
    eps_high = epsilon if epsilon_high is None else epsilon_high
    level = level or ("sequence" if m.name == "gspo" else "token")
    adv = torch.as_tensor(advantages, dtype=log_ratio.dtype).reshape(-1, 1).expand_as(log_ratio)
    if m.name == "vespo":
        seq = (log_ratio.clamp(-20.0, 20.0) * mask).sum(dim=-1, keepdim=True)
        log_w = seq.clamp(math.log(1e-8), 20.0)
        pos = adv[:, :1] >= 0
        k = torch.where(pos, vespo_k_pos, vespo_k_neg)
        lam = torch.where(pos, vespo_lambda_pos, vespo_lambda_neg).clamp(min=1e-4)
        return torch.exp(lam + k * log_w - lam * torch.exp(log_w)).expand_as(log_ratio)
    r = ratio_of(log_ratio, mask, level)
    if m.name == "cispo":
        return r.clamp(max=eps_high)
    if m.name == "sapo":
        tau = torch.where(adv > 0, sapo_temperature_pos, sapo_temperature_neg)
        s = torch.sigmoid(tau * (r - 1))
        return 4 * s * (1 - s) * r
    clipped = ((adv > 0) & (r > 1 + eps_high)) | ((adv < 0) & (r < 1 - epsilon))
    if delta is not None:
        clipped |= (adv < 0) & (r > delta)
    return torch.where(clipped, torch.zeros_like(r), r)


def policy_gradient(
    mask: torch.Tensor,
    advantages: torch.Tensor,
    mode: str | RLMode,
    log_ratio: torch.Tensor | None = None,
    *,
    counts: dict | None = None,
    **config,
) -> torch.Tensor:
    """Predicted ``dL/d logp: [B, T] = -A_b * W[b, t] * g[b, t]`` of a TRL loss type.

    ``counts``: keyword arguments of :func:`lossviz.rl.mode_weights` (``max_length``, ``ga_steps``, ...);
    ``config``: those of :func:`gate`. ``log_ratio`` defaults to 0 (on policy).
    """
    w = mode_weights(mask, mode, **(counts or {}))
    log_ratio = torch.zeros_like(w) if log_ratio is None else log_ratio.to(w.dtype)
    adv = torch.as_tensor(advantages, dtype=w.dtype)
    g = gate(mode, log_ratio, adv, mask.to(w.dtype), **config)
    return -adv.reshape(-1, 1) * w * g + 0.0  # + 0.0 turns -0.0 into 0.0
