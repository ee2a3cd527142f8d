"""Every reduction is a weight matrix: ``loss = sum_{b,t} W[b, t] * l[b, t]``.

``mask: [B, T]`` holds each token's training weight ``m[b, t]`` (1 trained, 0 ignored, or a fraction such
as a prompt-loss weight). With ``n_b = sum_t m[b, t]``, ``N = sum_b n_b`` and ``B`` samples:

==================== ============================== ============================================
name                 W[b, t]                        used by
==================== ============================== ============================================
sum                  m                              ``reduction="sum"``, open-instruct ``sum``
token_mean (mean)    m / N                          ``reduction="mean"``, HF, DAPO, verl token-mean
sample_mean          m / (n_b * B')                 GRPO, verl seq-mean-token-mean
seq_mean_token_sum   m / B'                         verl seq-mean-token-sum
constant_norm        m / (B * C)                    Dr. GRPO (TRL dr_grpo), C = max_length
padded_mean          m / (B * T)                    the bug: padding counted in the denominator
token_sum_norm       m / C                          an earlier verl seq-mean-token-sum-norm
==================== ============================== ============================================

``B'`` counts only samples with at least one trained token. A new reduction is one function that
returns ``W``, registered with :func:`register`; plots and widgets then work for it unchanged. This
table is tested equal to the registry; :func:`reduction_markdown` writes the README's from it.

When every token is ignored, the reductions whose denominator depends on the trained tokens
(``token_mean``, ``sample_mean``, ``seq_mean_token_sum``) are 0/0: they raise a ``ValueError`` unless
``if_empty="zero"`` asks for a loss of 0 with zero gradients (what an empty micro-batch should add).
``sum``, ``constant_norm`` and ``padded_mean`` have a fixed denominator and simply give 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import torch

from .checks import float_dtype

__all__ = [
    "Reduction",
    "REDUCTIONS",
    "register",
    "resolve_reduction",
    "weights",
    "global_weights",
    "reduce",
    "sample_weights",
    "losses_by_reduction",
    "BatchCounts",
    "reduction_table",
    "reduction_markdown",
]


@dataclass(frozen=True)
class BatchCounts:
    """What a reduction needs to know about a batch besides the mask itself."""

    tokens_per_position: torch.Tensor  # [B, T]: n of the sample that owns the position (0 if none)
    num_samples: int  # B: samples in the batch (rows, or distinct sample ids when packed)
    num_nonempty: int  # B': samples with at least one trained token
    num_tokens: torch.Tensor  # N = sum of the mask (a 0-dim tensor)
    padded_length: int  # T


@dataclass(frozen=True)
class Reduction:
    """A named reduction: its weight function, formula, who uses it, and how it treats 0/0."""

    name: str
    formula: str
    used_by: str
    weight_fn: Callable[..., torch.Tensor] = field(repr=False)
    aliases: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    empty_is_undefined: bool = False


class _Registry(Mapping):
    """Canonical names in order; aliases resolve on lookup but are not listed twice."""

    def __init__(self) -> None:
        self._items: dict[str, Reduction] = {}
        self._aliases: dict[str, str] = {}

    def add(self, red: Reduction) -> None:
        for name in (red.name, *red.aliases):
            if name in self._items or name in self._aliases or name == "none":
                raise ValueError(f"reduction name {name!r} is already taken")
        self._items[red.name] = red
        self._aliases.update({alias: red.name for alias in red.aliases})

    def __getitem__(self, name: str) -> Reduction:
        return self._items[self._aliases.get(name, name)]

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def aliases(self) -> dict[str, str]:
        """Alias -> canonical name."""
        return dict(self._aliases)


REDUCTIONS = _Registry()


def register(
    name: str,
    formula: str,
    used_by: str,
    *,
    aliases: tuple[str, ...] = (),
    params: tuple[str, ...] = (),
    empty_is_undefined: bool = False,
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorator: ``fn(mask, counts, **params) -> W`` joins :data:`REDUCTIONS` under ``name``."""

    def deco(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        REDUCTIONS.add(Reduction(name, formula, used_by, fn, aliases, params, empty_is_undefined))
        return fn

    return deco


def resolve_reduction(name: str) -> Reduction:
    """The :class:`Reduction` called ``name`` (or an alias); a ``ValueError`` lists the valid ones."""
    if not isinstance(name, str) or name not in REDUCTIONS:
        valid = ", ".join(
            list(REDUCTIONS) + [f"{a} (= {c})" for a, c in REDUCTIONS.aliases().items()]
        )
        raise ValueError(f"unknown reduction {name!r}; choose one of: {valid}")
    return REDUCTIONS[name]


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(num.dtype).tiny), 0.0)


@register("sum", "Σ m·l", "F.cross_entropy(reduction='sum'); open-instruct reduce_loss=sum")
def _sum(mask: torch.Tensor, counts: BatchCounts) -> torch.Tensor:
    return mask.clone()


@register(
    "token_mean",
    "Σ m·l / N",
    "F.cross_entropy(reduction='mean'); HF num_items_in_batch; DAPO; verl token-mean; TRL dapo/bnpo",
    aliases=("mean", "weighted"),
    empty_is_undefined=True,
)
def _token_mean(mask: torch.Tensor, counts: BatchCounts) -> torch.Tensor:
    return mask / counts.num_tokens


@register(
    "sample_mean",
    "1/B' Σ_b (Σ_t m·l / n_b)",
    "GRPO; verl seq-mean-token-mean; TRL grpo",
    empty_is_undefined=True,
)
def _sample_mean(mask: torch.Tensor, counts: BatchCounts) -> torch.Tensor:
    return _safe_div(mask, counts.tokens_per_position) / counts.num_nonempty


@register(
    "seq_mean_token_sum",
    "1/B' Σ_b Σ_t m·l",
    "verl seq-mean-token-sum",
    empty_is_undefined=True,
)
def _seq_mean_token_sum(mask: torch.Tensor, counts: BatchCounts) -> torch.Tensor:
    return mask / counts.num_nonempty


@register(
    "constant_norm",
    "Σ m·l / (B·C), C = max_length",
    "Dr. GRPO; TRL dr_grpo (C = max_completion_length); verl seq-mean-token-sum-norm",
    params=("max_length",),
)
def _constant_norm(
    mask: torch.Tensor, counts: BatchCounts, max_length: float | None = None
) -> torch.Tensor:
    length = counts.padded_length if max_length is None else max_length
    if isinstance(length, bool) or not isinstance(length, (int, float)) or not length > 0:
        raise ValueError(f"max_length must be a positive number, got {max_length!r}")
    return mask / (counts.num_samples * float(length))


@register("padded_mean", "Σ m·l / (B·T)", "the bug: a hand-written mean that counts padding")
def _padded_mean(mask: torch.Tensor, counts: BatchCounts) -> torch.Tensor:
    return mask / mask.numel()


@register(
    "token_sum_norm",
    "Σ m·l / C, C = max_length (no division by B)",
    "none at verl 0.9.1: an earlier verl seq-mean-token-sum-norm (0.9.1 also divides by B')",
    params=("max_length",),
)
def _token_sum_norm(
    mask: torch.Tensor, counts: BatchCounts, max_length: float | None = None
) -> torch.Tensor:
    length = counts.padded_length if max_length is None else max_length
    if isinstance(length, bool) or not isinstance(length, (int, float)) or not length > 0:
        raise ValueError(f"max_length must be a positive number, got {max_length!r}")
    return mask / float(length)


def _as_mask(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """``mask`` as a ``[B, T]`` tensor in the weight dtype (:func:`lossviz.checks.float_dtype`)."""
    if isinstance(mask, (list, tuple)):
        try:
            mask = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{name} must be a torch.Tensor [B, T] or a rectangular list of numbers; "
                f"torch.as_tensor could not read it ({err})"
            ) from None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor [B, T], got {type(mask).__name__}; "
            "build one with lv.mask_from_lengths(lengths)"
        )
    if mask.dim() == 1:
        mask = mask.unsqueeze(0)
    if mask.dim() != 2:
        raise ValueError(f"{name} must have shape [B, T], got {tuple(mask.shape)}")
    if mask.numel() == 0:
        raise ValueError(
            f"empty batch: {name} has shape {tuple(mask.shape)}; pass at least one token"
        )
    if mask.is_complex():
        raise TypeError(f"{name} must hold real token weights, got {mask.dtype}")
    # counts and weights never live in float16/bfloat16: N > 65504 is inf in float16 (then W = 0)
    mask = mask.to(
        float_dtype(mask.dtype if mask.is_floating_point() else torch.get_default_dtype())
    )
    if not bool(torch.isfinite(mask).all()) or bool((mask < 0).any()):
        raise ValueError(f"{name} weights must be finite and >= 0 (1 = trained, 0 = ignored)")
    return mask


def _as_sample_ids(sample_ids: object, mask: torch.Tensor) -> torch.Tensor:
    if isinstance(sample_ids, (list, tuple)):
        sample_ids = torch.as_tensor(sample_ids)
    if isinstance(sample_ids, torch.Tensor) and sample_ids.dim() == 1:
        sample_ids = sample_ids.unsqueeze(0)  # a 1-d mask is one row, so are its ids
    if (
        not isinstance(sample_ids, torch.Tensor)
        or tuple(sample_ids.shape) != tuple(mask.shape)
        or sample_ids.is_floating_point()
        or sample_ids.is_complex()
        or sample_ids.dtype == torch.bool
    ):
        got = (
            f"{sample_ids.dtype} {tuple(sample_ids.shape)}"
            if isinstance(sample_ids, torch.Tensor)
            else type(sample_ids).__name__
        )
        raise ValueError(
            f"sample_ids must be an integer tensor shaped like the mask {tuple(mask.shape)}, "
            f"got {got}; use -1 where no sample is"
        )
    return sample_ids.to(mask.device)


def _sample_index(sample_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``owned [B, T]``, each position's sample as 0..K-1 (by increasing id), and K.

    Ids are compacted with ``unique``: memory grows with the number of samples, not the largest id.
    """
    owned = sample_ids >= 0
    if not bool(owned.any()):
        raise ValueError("sample_ids marks no position as part of a sample (all are -1)")
    distinct, inverse = torch.unique(sample_ids[owned], return_inverse=True)
    index = torch.zeros(sample_ids.shape, dtype=torch.long, device=sample_ids.device)
    index[owned] = inverse
    return owned, index, len(distinct)


def _counts(mask: torch.Tensor, sample_ids: torch.Tensor | None) -> BatchCounts:
    if sample_ids is None:
        n = mask.sum(dim=1)
        per_position = n.unsqueeze(1).expand_as(mask)
        num_samples = mask.shape[0]
    else:
        sample_ids = _as_sample_ids(sample_ids, mask)
        owned, index, num_samples = _sample_index(sample_ids)
        if bool((mask[~owned] > 0).any()):
            raise ValueError("a position with sample_ids == -1 has a nonzero mask weight")
        n = torch.zeros(num_samples, dtype=mask.dtype, device=mask.device)
        n.index_add_(0, index[owned], mask[owned])
        per_position = torch.where(owned, n[index], 0.0)
    return BatchCounts(
        tokens_per_position=per_position,
        num_samples=num_samples,
        num_nonempty=int((n > 0).sum()),
        num_tokens=mask.sum(),
        padded_length=mask.shape[1],
    )


def weights(
    mask: torch.Tensor,
    reduction: str = "token_mean",
    *,
    sample_ids: torch.Tensor | None = None,
    if_empty: str = "raise",
    **params,
) -> torch.Tensor:
    """The weight matrix ``W: [B, T]`` of a reduction, so that ``loss = (W * l).sum()``.

    ``mask: [B, T]`` token weights (bool, 0/1 or fractional). ``sample_ids: [B, T]`` (optional, -1 for
    none) says which sample owns each position when several share a row (packing); by default each
    row is one sample. ``if_empty``: ``"raise"`` or ``"zero"``, for a 0/0 reduction with no trained token.
    """
    red = resolve_reduction(reduction)
    unknown = sorted(set(params) - set(red.params))
    if unknown:
        takes = ", ".join(red.params) or "no parameters"
        raise TypeError(f"reduction {red.name!r} takes {takes}; got unexpected {unknown}")
    if if_empty not in ("raise", "zero"):
        raise ValueError(f"if_empty must be 'raise' or 'zero', got {if_empty!r}")
    mask = _as_mask(mask)
    counts = _counts(mask, sample_ids)
    if red.empty_is_undefined and not bool(counts.num_tokens > 0):
        if if_empty == "zero":
            return torch.zeros_like(mask)
        raise ValueError(
            f"every token is ignored (the mask sums to 0), so {red.name} is 0/0; torch's mean would "
            "return NaN here. Check your labels/mask, or pass if_empty='zero' for a loss of 0 "
            "with zero gradients (what a micro-batch without trained tokens should contribute)"
        )
    return red.weight_fn(mask, counts, **params)


def global_weights(
    mask: torch.Tensor,
    reduction: str = "token_mean",
    *,
    num_tokens: float | None = None,
    num_samples: float | None = None,
    **params,
) -> torch.Tensor:
    """``W: [B, T]`` of one part of a larger batch: the reduction's own counts swapped for the whole's.

    ``num_tokens`` replaces ``N`` (``token_mean``: ``W = m / num_tokens``); ``num_samples`` replaces
    ``B'`` and ``B`` (``sample_mean``: ``m / (n_b * num_samples)``, ``seq_mean_token_sum``,
    ``constant_norm``); ``None`` keeps the mask's own count. A reduction that divides by neither is
    unchanged. This is how a micro-batch's loss divides by counts all-reduced over every micro-batch
    and rank (transformers' ``num_items_in_batch``, verl's ``global_batch_info``).
    """
    red = resolve_reduction(reduction)
    w = weights(mask, red.name, **params)  # checks the mask, the parameters and 0/0
    counts = _counts(_as_mask(mask), None)
    swap = {}
    if num_tokens is not None:
        swap["num_tokens"] = torch.as_tensor(_positive("num_tokens", num_tokens), dtype=w.dtype)
    if num_samples is not None:
        swap["num_samples"] = swap["num_nonempty"] = _positive("num_samples", num_samples)
    if not swap or not bool(counts.num_tokens > 0):
        return w
    return red.weight_fn(_as_mask(mask), replace(counts, **swap), **params)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive count, got {value!r}")
    return value


def reduce(
    losses: torch.Tensor,
    mask: torch.Tensor,
    reduction: str = "token_mean",
    **params,
) -> torch.Tensor:
    """``sum(W * losses)``: the scalar loss of per-token ``losses: [B, T]`` under ``reduction``.

    ``W`` and the sum are computed in float32 (float64 for float64 losses) and the loss is
    returned in the dtype of ``losses``, as ``F.cross_entropy`` returns it. Positions with ``W = 0``
    never reach the result, so an inf or NaN loss at a masked position does not make it NaN.
    """
    if not isinstance(losses, torch.Tensor) or not losses.is_floating_point():
        raise TypeError("losses must be a floating-point torch.Tensor [B, T] (see lv.token_losses)")
    if losses.dim() == 1:
        losses = losses.unsqueeze(0)
    mask = _as_mask(mask)
    if tuple(losses.shape) != tuple(mask.shape):
        raise ValueError(
            f"losses {tuple(losses.shape)} and mask {tuple(mask.shape)} must have the same shape"
        )
    dtype = float_dtype(losses.dtype)  # the losses decide: float64 only for float64 losses
    w = weights(mask.to(dtype), reduction, **params).to(losses.device)
    # torch.where, not w * l alone: 0 * inf is NaN, and a padded position may hold anything
    total = torch.where(w != 0, w * losses.to(dtype), 0.0).sum()
    return _to_loss_dtype(total, losses.dtype)


def _to_loss_dtype(total: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    out = total.to(dtype)
    # only a float16/bfloat16 loss can overflow here (one device sync, only in that case)
    if out.dtype != total.dtype and bool(torch.isfinite(total) & ~torch.isfinite(out)):
        warnings.warn(
            f"the loss {float(total.detach()):.6g} does not fit {dtype} (largest finite value "
            f"{torch.finfo(dtype).max:g}) and becomes inf; compute it from float32 losses "
            "(logits.float()) or use a mean instead of a sum",
            RuntimeWarning,
            stacklevel=3,
        )
    return out


def sample_weights(
    mask: torch.Tensor,
    reduction: str = "token_mean",
    *,
    as_shares: bool = True,
    sample_ids: torch.Tensor | None = None,
    **params,
) -> torch.Tensor:
    """Each sample's total weight ``sum_t W[b, t]`` (``[B]``), as shares summing to 1 by default
    (``as_shares=False``: the totals themselves).

    Token mean gives sample b the share ``n_b / N``; sample mean gives every non-empty sample ``1/B'``.
    With ``sample_ids`` the result has one entry per distinct sample id, in increasing order (ids
    0..K-1 give entries 0..K-1).
    """
    w = weights(mask, reduction, sample_ids=sample_ids, **params)
    if sample_ids is None:
        per_sample = w.sum(dim=1)
    else:
        owned, index, num_samples = _sample_index(_as_sample_ids(sample_ids, w))
        per_sample = torch.zeros(num_samples, dtype=w.dtype, device=w.device)
        per_sample.index_add_(0, index[owned], w[owned])
    if not as_shares:
        return per_sample
    total = per_sample.sum()
    return per_sample / total if bool(total > 0) else torch.zeros_like(per_sample)


def losses_by_reduction(
    losses: torch.Tensor, mask: torch.Tensor, *, sample_ids: torch.Tensor | None = None
) -> dict[str, float]:
    """``{name: sum_{b,t} W[b, t] * l[b, t]}`` for every registered reduction, default parameters.

    ``losses, mask, sample_ids: [B, T]`` (mask and ids moved to the losses' device). A reduction
    that has no value here (0/0 with every token ignored) gives NaN.
    """
    mask = _as_mask(mask).to(losses.device)
    ids = None if sample_ids is None else sample_ids.to(losses.device)
    out = {}
    for name in REDUCTIONS:
        try:
            out[name] = float((weights(mask, name, sample_ids=ids) * losses).sum())
        except (ValueError, TypeError):
            out[name] = float("nan")
    return out


def reduction_table() -> list[dict[str, str]]:
    """One row per reduction: name, aliases, formula and who uses it (for docs and notebooks)."""
    return [
        {
            "name": r.name,
            "aliases": ", ".join(r.aliases),
            "formula": r.formula,
            "used_by": r.used_by,
        }
        for r in REDUCTIONS.values()
    ]


def reduction_markdown() -> str:
    """The README's table of the reductions, written from the registry: name (aliases), loss, users."""
    rows = ["| name | loss | who uses it |", "|---|---|---|"]
    for r in REDUCTIONS.values():
        aliases = ", ".join(f"`{a}`" for a in r.aliases)
        name = f"`{r.name}`" + (f" ({aliases})" if aliases else "")
        rows.append(f"| {name} | `{r.formula}` | {r.used_by} |")
    return "\n".join(rows)
