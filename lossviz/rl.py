"""Loss aggregation in RL fine-tuning (GRPO, DAPO, Dr. GRPO, ...) as named lossviz reductions.

A policy-gradient loss is a per-token loss ``l[b, t] = -A_b * ratio[b, t]`` (plus clipping and KL terms),
aggregated with a weight matrix ``W`` exactly like the SFT losses: ``L = sum_{b,t} W[b, t] * l[b, t]``.
The projects name their aggregations differently; each name is one lossviz reduction. ``B`` responses
in the micro-batch, ``B'`` of them non-empty, ``n_b`` tokens of response b, ``N = sum_b n_b``, ``T`` the
padded response length, ``C`` TRL's ``max_completion_length``, ``K`` its gradient-accumulation steps.
Measured on TRL 1.16.0 and verl 0.9.1 (tests/test_trl_grpo.py, tests/test_verl.py), one process:

=====================================  ====================  =====================  ===================
project name                           W[b, t]               lossviz reduction      paper
=====================================  ====================  =====================  ===================
TRL ``grpo``, ``sapo``, GSPO           m / (n_b * B * K)     sample_mean            GRPO, SAPO, GSPO
TRL ``bnpo``                           m / (N * K)           token_mean
TRL ``dapo`` (default), ``cispo``,     m / N_gen             token_mean             DAPO, MiniMax-M1,
``vespo``                                                                           VESPO
TRL ``dr_grpo``                        m / (B * C * K)       constant_norm          Dr. GRPO
TRL ``luspo``                          m / (B * K)           seq_mean_token_sum     LUSPO
verl ``token-mean``                    m / N                 token_mean             DAPO
verl ``token-sum``                     m                     sum
verl ``seq-mean-token-mean``           m / (n_b * B')        sample_mean            GRPO
verl ``seq-mean-token-sum``            m / B'                seq_mean_token_sum
verl ``seq-mean-token-sum-norm``       m / (B' * C)          constant_norm          Dr. GRPO
=====================================  ====================  =====================  ===================

TRL (``_compute_loss`` in ``trl/trainer/grpo_trainer.py``) divides ``grpo``, ``sapo``, ``bnpo``,
``dr_grpo`` and ``luspo`` by ``K``; ``dapo``, ``cispo`` and ``vespo`` divide by ``num_items_in_batch /
num_processes * K / steps_per_generation`` where ``num_items_in_batch`` counts the completion tokens of
the whole generation batch on all processes: with the default ``steps_per_generation = K`` that is
``N_gen / P`` per micro-batch, so after summing the ``K`` micro-batches and DDP's average over the ``P``
processes every token weighs ``1 / N_gen``. GSPO is ``importance_sampling_level="sequence"``; at ratio 1
its gradient equals ``grpo``'s. The ratio enters through each type's gate (:mod:`lossviz.rl_ratio`):
``cispo`` multiplies by ``min(ratio, epsilon_high)``, which defaults to ``epsilon = 0.2``.

verl 0.9.1 (``agg_loss`` in ``verl/trainer/ppo/core_algos.py``) divides by global counts passed in
``global_batch_info``: ``batch_num_tokens`` (tokens of the mini-batch on all ranks), ``global_batch_size``
(its responses) and multiplies by ``dp_size``; without them (one rank) they are this micro-batch's ``N``
and ``B'``. ``seq-mean-token-sum-norm`` divides the sequence mean by ``C = loss_scale_factor``, or the
padded width ``T`` when that is unset: it *has* a ``1/B'``, so with ``C = max_completion_length`` it
equals TRL's ``dr_grpo`` (the earlier verl source this suite read divided by ``T`` only). For an empty
response TRL counts the row in ``B`` (it clamps ``n_b`` at 1); verl and lossviz leave it out of ``B'``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batching import mask_from_lengths
from .checks import float_dtype, integer, integer_list, number
from .reductions import REDUCTIONS, global_weights, weights

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


@dataclass(frozen=True)
class RLMode:
    """One project's aggregation name, the lossviz reduction it is, and its normaliser in words."""

    project: str  # "TRL" or "verl"
    name: str  # the option value users type
    option: str  # the config field it belongs to
    reduction: str  # lossviz reduction name
    normalizer: str
    uses_max_length: bool = False
    # how the micro-batch weight scales with accumulation and processes (see mode_weights)
    scaling: str = "accumulation"  # "accumulation" (1/K), "generation" (N_gen / P), "verl"
    setting: str = ""  # the config that selects it, when it is not ``option=name``
    # W[b, t] of one micro-batch, as measured (tests/test_trl_grpo.py, tests/test_verl.py)
    weight: str = ""

    @property
    def key(self) -> str:
        """``"trl:grpo"``-style unique key."""
        return f"{self.project.lower()}:{self.name}"


_TRL, _VERL = "loss_type", "loss_agg_mode"
_MODES = (
    RLMode(
        "TRL", "grpo", _TRL, "sample_mean", "n_b per response, then B, then K", weight="m/(n_b·B·K)"
    ),
    RLMode(
        "TRL", "bnpo", _TRL, "token_mean", "N tokens of this micro-batch, then K", weight="m/(N·K)"
    ),
    RLMode(
        "TRL",
        "dapo",
        _TRL,
        "token_mean",
        "N_gen / P tokens",
        scaling="generation",
        weight="m/N_gen",
    ),
    RLMode(
        "TRL",
        "dr_grpo",
        _TRL,
        "constant_norm",
        "B * C, C = max_completion_length, then K",
        True,
        weight="m/(B·C·K)",
    ),
    RLMode(
        "TRL",
        "cispo",
        _TRL,
        "token_mean",
        "N_gen / P tokens",
        scaling="generation",
        weight="m/N_gen",
    ),
    RLMode(
        "TRL", "sapo", _TRL, "sample_mean", "n_b per response, then B, then K", weight="m/(n_b·B·K)"
    ),
    RLMode("TRL", "luspo", _TRL, "seq_mean_token_sum", "B responses, then K", weight="m/(B·K)"),
    RLMode(
        "TRL",
        "vespo",
        _TRL,
        "token_mean",
        "N_gen / P tokens",
        scaling="generation",
        weight="m/N_gen",
    ),
    RLMode(
        "TRL",
        "gspo",
        "importance_sampling_level",
        "sample_mean",
        "n_b per response, then B, then K",
        setting='loss_type=grpo, importance_sampling_level="sequence"',
        weight="m/(n_b·B·K)",
    ),
    RLMode(
        "verl", "token-mean", _VERL, "token_mean", "N tokens (global)", scaling="verl", weight="m/N"
    ),
    RLMode("verl", "token-sum", _VERL, "sum", "none (times dp_size)", scaling="verl", weight="m"),
    RLMode(
        "verl",
        "seq-mean-token-mean",
        _VERL,
        "sample_mean",
        "n_b, then B'",
        scaling="verl",
        weight="m/(n_b·B')",
    ),
    RLMode(
        "verl",
        "seq-mean-token-sum",
        _VERL,
        "seq_mean_token_sum",
        "B'",
        scaling="verl",
        weight="m/B'",
    ),
    RLMode(
        "verl",
        "seq-mean-token-sum-norm",
        _VERL,
        "constant_norm",
        "B' * C, C = loss_scale_factor or T",
        True,
        scaling="verl",
        weight="m/(B'·C)",
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
            "setting": m.setting or f"{m.option}={m.name}",
            "reduction": m.reduction,
            "normalizer": m.normalizer,
            "weight": m.weight,
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
    mask: torch.Tensor,
    mode: str | RLMode,
    *,
    max_length: int | None = None,
    ga_steps: int = 1,
    steps_per_generation: int | None = None,
    processes: int = 1,
    global_tokens: float | None = None,
    global_responses: float | None = None,
) -> torch.Tensor:
    """``W: [B, T]`` of an RL mode for one micro-batch, so that ``loss = (W * per_token_loss).sum()``.

    ``max_length``: TRL's ``max_completion_length`` / verl's ``loss_scale_factor`` ``C`` for the two
    constant normalisers (default: the mask's own ``T``). The rest are the counts the trainers use,
    defaulting to one process and one micro-batch: ``ga_steps`` TRL's ``K`` (``grpo``, ``bnpo``, ``sapo``,
    ``dr_grpo``, ``luspo`` divide by it); ``steps_per_generation`` (default ``K``) and ``global_tokens``
    (``num_items_in_batch``, default this mask's ``N``) give ``dapo``/``cispo``/``vespo``'s normaliser
    ``global_tokens / processes * K / steps_per_generation``; for verl ``global_tokens`` is
    ``batch_num_tokens``, ``global_responses`` is ``global_batch_size`` (default ``B'``) and ``processes``
    is ``dp_size``, which multiplies the loss.
    """
    m = resolve_mode(mode)
    for name, v in (("ga_steps", ga_steps), ("processes", processes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    params = {"max_length": max_length} if m.uses_max_length and max_length is not None else {}
    w = weights(mask, m.reduction, **params)
    if m.scaling == "accumulation":
        return w / ga_steps
    n_local = float(mask.sum())
    tokens = n_local if global_tokens is None else float(global_tokens)
    if m.scaling == "generation":  # a token mean over N_gen / P * K / steps_per_generation
        spg = ga_steps if steps_per_generation is None else steps_per_generation
        count = max(tokens, 1.0) / processes * ga_steps / spg
        return global_weights(mask, "token_mean", num_tokens=count) if n_local else w
    # verl: the reduction's own counts (N, B' or B) swapped for the global ones, times dp_size
    nonempty = float((mask.sum(dim=1) > 0).sum())
    if not nonempty:
        return w if m.reduction != "sum" else w * processes
    responses = None if global_responses is None else float(global_responses)
    if m.reduction == "constant_norm" and responses is None:
        responses = nonempty  # verl divides by B', not by the rows B
    tokens = None if global_tokens is None else tokens
    return global_weights(mask, m.reduction, num_tokens=tokens, num_samples=responses, **params) * (
        processes
    )


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


# --- the RL primer's pieces: group-relative advantages, the clip factor g(r), the per-token push ---
__all__ += ["STD_KINDS", "clip_factor", "group_advantages", "token_push"]

STD_KINDS = ("none", "unbiased", "biased")


def group_advantages(
    rewards: torch.Tensor | list[float], group_size: int, *, std: str = "none", eps: float = 1e-4
) -> torch.Tensor:
    """``A_b = reward_b - mean_group(reward)``, optionally divided by ``std_group + eps``: ``[B]``.

    ``rewards: [B]``, ``B = prompts * G`` with the ``G = group_size`` answers of one prompt adjacent.
    ``std``: ``"none"`` (Dr. GRPO), ``"unbiased"`` (divides the squared deviations by ``G - 1``: TRL
    1.16's ``scale_rewards="group"`` with ``eps = 1e-4``, verl 0.9.1's GRPO with ``eps = 1e-6``) or
    ``"biased"`` (divides by ``G``). A group whose rewards are all equal gets ``A = 0``.
    """
    g = integer("group_size", group_size, low=2)
    if std not in STD_KINDS:
        raise ValueError(f"std must be one of {STD_KINDS}, got {std!r}")
    r = torch.as_tensor(rewards, dtype=torch.float64)
    if r.dim() != 1 or r.numel() == 0 or r.numel() % g:
        raise ValueError(
            f"rewards must be [B] with B a multiple of group_size={g}, got shape {tuple(r.shape)}"
        )
    if not bool(torch.isfinite(r).all()):
        raise ValueError(f"rewards must be finite, got {r.tolist()}")
    eps = number("eps", eps, low=0.0)
    groups = r.view(-1, g)
    a = groups - groups.mean(dim=1, keepdim=True)
    if std != "none":
        s = groups.std(dim=1, keepdim=True, correction=1 if std == "unbiased" else 0)
        a = torch.where(s + eps > 0, a / (s + eps), torch.zeros_like(a))
    return a.reshape(-1)


def clip_factor(
    ratio: torch.Tensor,
    advantages: torch.Tensor | list[float],
    *,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
) -> torch.Tensor:
    """``g(r): [B, T]``, PPO's clipped-ratio factor: ``r``, or 0 where the clip holds the loss flat.

    The per-token loss ``-min(r·A, clip(r, 1-eps, 1+eps_high)·A)`` has ``dl/dlog π = -A·g(r)`` with
    ``g = 0`` for ``A > 0, r > 1 + eps_high`` and for ``A < 0, r < 1 - eps``, else ``g = r``.
    ``ratio: [B, T]`` (``π_θ / π_old`` per token), ``advantages: [B]``; ``eps_high`` defaults to ``eps``.
    """
    r = torch.as_tensor(ratio)
    if r.dim() != 2:
        raise ValueError(f"ratio must be [B, T], got shape {tuple(r.shape)}")
    r = r.to(float_dtype(r.dtype))
    adv = _advantages(advantages, r.shape[0], r.dtype).unsqueeze(1)
    low = number("epsilon", epsilon, low=0.0)
    high = low if epsilon_high is None else number("epsilon_high", epsilon_high, low=0.0)
    clipped = ((adv > 0) & (r > 1 + high)) | ((adv < 0) & (r < 1 - low))
    return torch.where(clipped, torch.zeros_like(r), r)


def token_push(
    weights: torch.Tensor,
    advantages: torch.Tensor | list[float],
    factor: torch.Tensor | None = None,
) -> torch.Tensor:
    """The per-token push ``-dL/dlog π[b, t] = A_b · W[b, t] · g[b, t]``: ``[B, T]``, > 0 pushes up.

    ``L = Σ W·l`` with ``l = -A·r`` (clipped or not) has ``dL/dlog π = -A·W·g(r)``; the push is its
    negative, so a token of a better-than-average answer (``A > 0``) is pushed up. ``weights: [B, T]``
    (``W``, e.g. :func:`mode_weights`), ``advantages: [B]``, ``factor: [B, T]`` (``g``; default 1, on
    policy).
    """
    w = torch.as_tensor(weights)
    if w.dim() != 2:
        raise ValueError(f"weights must be [B, T], got shape {tuple(w.shape)}")
    w = w.to(float_dtype(w.dtype))
    adv = _advantages(advantages, w.shape[0], w.dtype).unsqueeze(1)
    g = torch.ones_like(w) if factor is None else torch.as_tensor(factor).to(w.dtype)
    if g.shape != w.shape:
        raise ValueError(
            f"factor must have the weights' shape {tuple(w.shape)}, got {tuple(g.shape)}"
        )
    return adv * w * g + 0.0  # + 0.0 turns -0.0 (a padding weight times A < 0) into 0.0
