"""Loss aggregation in RL fine-tuning (GRPO, DAPO, Dr. GRPO) as named lossviz reductions.

A policy-gradient loss is a per-token loss ``l[b, t] = -A_b * ratio[b, t]`` (plus clipping and KL terms),
aggregated with a weight matrix ``W`` exactly like the SFT losses: ``L = sum_{b,t} W[b, t] * l[b, t]``.
The projects name their aggregations differently; each name is one lossviz reduction. ``B`` responses
in the (micro-)batch, ``n_b`` tokens of response b, ``N = sum_b n_b``, ``T`` the padded response length,
``L_max`` TRL's ``max_completion_length``:

==================================  ==========================  =====================  ====================
project name                        W[b, t]                     lossviz reduction      paper
==================================  ==========================  =====================  ====================
TRL ``grpo``                        m / (n_b * B)               sample_mean            GRPO (2402.03300)
TRL ``bnpo``                        m / N (this process)        token_mean
TRL ``dapo``                        m / N (all processes)       token_mean             DAPO (2503.14476)
TRL ``dr_grpo``                     m / (B * L_max)             constant_norm          Dr. GRPO (2503.20783)
verl ``token-mean``                 m / N                       token_mean             DAPO
verl ``seq-mean-token-mean``        m / (n_b * B)               sample_mean            GRPO
verl ``seq-mean-token-sum``         m / B                       seq_mean_token_sum
verl ``seq-mean-token-sum-norm``    m / T   (no 1/B)            token_sum_norm (new)   Dr. GRPO
==================================  ==========================  =====================  ====================

Where they disagree: verl's ``seq-mean-token-sum-norm`` divides the summed loss by ``T =
loss_mask.shape[-1]`` only (``agg_loss`` in ``verl/trainer/ppo/core_algos.py``), while TRL's ``dr_grpo``
divides by ``B * max_completion_length`` (``_compute_loss`` in ``trl/trainer/grpo_trainer.py``): with the
same constant, verl's loss and gradient are ``B`` times TRL's. TRL ``bnpo`` normalises by the tokens of
the local batch; ``dapo`` by ``num_items_in_batch / num_processes``, the completion tokens gathered over
all processes, so that after DDP averages the ranks the result is the global token mean. In one batch on
one process both equal ``token_mean``. Recent TRL versions also divide ``grpo``, ``bnpo`` and
``dr_grpo`` by the gradient-accumulation steps, while ``dapo``'s token count already spans them. For an
empty response (0 tokens), TRL ``grpo`` still counts the row in ``B`` (it clamps ``n_b`` at 1), verl
divides 0 by 0, and lossviz's ``sample_mean`` leaves the row out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batching import mask_from_lengths
from .checks import float_dtype, integer, integer_list, number
from .reductions import REDUCTIONS, BatchCounts, register, weights

__all__ = [
    "MODES",
    "RLMode",
    "gradient_weights",
    "mode_names",
    "mode_table",
    "mode_weights",
    "policy_loss",
    "resolve_mode",
    "response_mask",
    "sample_push",
]

if "token_sum_norm" not in REDUCTIONS:

    @register(
        "token_sum_norm",
        "Σ m·l / C, C = max_length (no division by B)",
        "verl seq-mean-token-sum-norm (C = loss_mask.shape[-1])",
        params=("max_length",),
    )
    def _token_sum_norm(
        mask: torch.Tensor, counts: BatchCounts, max_length: float | None = None
    ) -> torch.Tensor:
        length = counts.padded_length if max_length is None else max_length
        if isinstance(length, bool) or not isinstance(length, (int, float)) or not length > 0:
            raise ValueError(f"max_length must be a positive number, got {max_length!r}")
        return mask / float(length)


@dataclass(frozen=True)
class RLMode:
    """One project's aggregation name, the lossviz reduction it is, and its normaliser in words."""

    project: str  # "TRL" or "verl"
    name: str  # the option value users type
    option: str  # the config field it belongs to
    reduction: str  # lossviz reduction name
    normalizer: str
    uses_max_length: bool = False

    @property
    def key(self) -> str:
        """``"trl:grpo"``-style unique key."""
        return f"{self.project.lower()}:{self.name}"


_MODES = (
    RLMode("TRL", "grpo", "loss_type", "sample_mean", "n_b per response, then B"),
    RLMode("TRL", "bnpo", "loss_type", "token_mean", "N tokens of this process's batch"),
    RLMode("TRL", "dapo", "loss_type", "token_mean", "N tokens over all processes / R"),
    RLMode("TRL", "dr_grpo", "loss_type", "constant_norm", "B * max_completion_length", True),
    RLMode("verl", "token-mean", "loss_agg_mode", "token_mean", "N tokens"),
    RLMode("verl", "seq-mean-token-mean", "loss_agg_mode", "sample_mean", "n_b, then B"),
    RLMode("verl", "seq-mean-token-sum", "loss_agg_mode", "seq_mean_token_sum", "B"),
    RLMode(
        "verl",
        "seq-mean-token-sum-norm",
        "loss_agg_mode",
        "token_sum_norm",
        "T = loss_mask.shape[-1] (no B)",
        True,
    ),
)
MODES: dict[str, RLMode] = {m.key: m for m in _MODES}


def mode_names() -> list[str]:
    """Every mode key, TRL first: ``["trl:grpo", ..., "verl:seq-mean-token-sum-norm"]``."""
    return list(MODES)


def resolve_mode(mode: str | RLMode) -> RLMode:
    """The :class:`RLMode` for a key (``"trl:dr_grpo"``) or an unambiguous bare name (``"dr_grpo"``)."""
    if isinstance(mode, RLMode):
        return mode
    if isinstance(mode, str):
        if mode in MODES:
            return MODES[mode]
        hits = [m for m in _MODES if m.name == mode]
        if len(hits) == 1:
            return hits[0]
    raise ValueError(f"unknown RL mode {mode!r}; choose one of: {', '.join(MODES)}")


def mode_table() -> list[dict[str, str]]:
    """One row per mode: project, option=value, lossviz reduction, normaliser, formula."""
    return [
        {
            "project": m.project,
            "setting": f"{m.option}={m.name}",
            "reduction": m.reduction,
            "normalizer": m.normalizer,
            "formula": REDUCTIONS[m.reduction].formula,
        }
        for m in _MODES
    ]


def response_mask(lengths: list[int] | torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """``[B, T]`` float mask of responses with these token counts (``T = max_length or max(lengths)``)."""
    lengths = integer_list("lengths", lengths, low=0)
    longest = max(lengths)
    if max_length is not None:
        max_length = integer("max_length", max_length, low=max(longest, 1))
    mask = mask_from_lengths(lengths).to(torch.float64)
    total = longest if max_length is None else max_length
    if mask.shape[1] < total:
        mask = torch.nn.functional.pad(mask, (0, total - mask.shape[1]))
    return mask


def mode_weights(
    mask: torch.Tensor, mode: str | RLMode, *, max_length: int | None = None
) -> torch.Tensor:
    """``W: [B, T]`` of an RL mode, so that ``loss = (W * per_token_loss).sum()``.

    ``max_length``: TRL's ``max_completion_length`` / verl's padded length ``T`` for the two constant
    normalisers (default: the mask's own ``T``); ignored by the other modes.
    """
    m = resolve_mode(mode)
    params = {"max_length": max_length} if m.uses_max_length and max_length is not None else {}
    return weights(mask, m.reduction, **params)


def gradient_weights(
    mask: torch.Tensor,
    advantages: torch.Tensor | list[float],
    mode: str | RLMode,
    *,
    max_length: int | None = None,
) -> torch.Tensor:
    """``dL/d logp[b, t] = -A_b * W[b, t]``: each token's gradient weight at ``ratio = 1``, ``[B, T]``.

    For ``l[b, t] = -A_b * exp(logp - logp_old)`` the derivative at ``logp = logp_old`` is ``-A_b``; the
    aggregation multiplies it by ``W``. Negative: gradient descent raises that token's log-prob.
    """
    w = mode_weights(mask, mode, max_length=max_length)
    adv = _advantages(advantages, w.shape[0], w.dtype)
    return -adv.unsqueeze(1) * w + 0.0  # + 0.0 turns -0.0 (padding of A > 0) into 0.0


def _advantages(advantages: object, num: int, dtype: torch.dtype) -> torch.Tensor:
    """``[B]`` advantages as a finite tensor, or an error that names the argument."""
    if isinstance(advantages, torch.Tensor):
        adv = advantages.to(dtype)
    else:
        if isinstance(advantages, (str, bytes)) or not hasattr(advantages, "__len__"):
            raise ValueError(
                f"advantages must be a list of numbers, one per response, got {advantages!r}"
            )
        adv = torch.tensor(
            [number(f"advantages[{i}]", a, finite=False) for i, a in enumerate(advantages)],
            dtype=dtype,
        )
    if adv.dim() != 1 or adv.numel() != num:
        raise ValueError(
            f"advantages must have one value per response ({num}), got shape {tuple(adv.shape)}"
        )
    if not bool(torch.isfinite(adv).all()):
        raise ValueError(f"advantages must be finite, got {adv.tolist()}")
    return adv


def sample_push(
    mask: torch.Tensor,
    advantages: torch.Tensor | list[float],
    mode: str | RLMode,
    *,
    max_length: int | None = None,
) -> dict[str, torch.Tensor]:
    """Per response ``[B]``: the weight of one of its tokens and the total ``sum_t |dL/d logp|``."""
    g = gradient_weights(mask, advantages, mode, max_length=max_length)
    n = mask.sum(dim=1)
    total = g.abs().sum(dim=1)
    per_token = torch.where(n > 0, total / n.clamp_min(1), torch.zeros_like(total))
    return {"per_token": per_token, "total": total}


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    mode: str | RLMode,
    *,
    max_length: int | None = None,
) -> torch.Tensor:
    """Unclipped policy-gradient loss ``sum W * (-A_b * exp(logp - old_logp))`` (shapes ``[B, T]``).

    ``W`` and the sum in float32 (float64 for float64 ``logp``), the loss in ``logp``'s dtype; padded
    positions (``W = 0``) never reach it, so a huge or inf log-ratio there cannot make it inf or NaN.
    """
    w = mode_weights(mask, mode, max_length=max_length)
    dtype = float_dtype(logp.dtype)
    w = w.to(dtype=dtype, device=logp.device)
    keep = w != 0
    # zero the log-ratio where W = 0 before exp: exp(inf) there would give a NaN gradient
    delta = (logp - old_logp).to(dtype).masked_fill(~keep, 0.0)  # its gradient there: +0.0
    adv = _advantages(advantages, w.shape[0], dtype).to(logp.device)
    per_token = -adv.unsqueeze(1) * torch.exp(delta)
    return (w * per_token).sum().to(logp.dtype)  # finite at padding: delta is 0 there
