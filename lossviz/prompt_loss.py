"""Prompt loss weight and the generation ratio: how much of the loss the completion actually gets.

With weight 1 on the ``c`` completion tokens and ``plw`` on the ``p`` prompt tokens, the weighted loss
``sum w*l / sum w`` (lossviz's ``token_mean`` on a fractional mask) gives the completion the share

    share = c / (c + plw * p) = Rg / (Rg + plw),   Rg = c / p  (the generation ratio).

RACE-like multiple choice (one answer letter after a long passage) has Rg near 0.01, so even
``plw = 0.1`` leaves the completion about 9% of the weight. Rg spans orders of magnitude across
datasets, so its geometric mean describes a dataset better than its arithmetic mean
(D. Vaughn, "To Mask or Not to Mask"; Huerta-Enochian & Ko 2024, arXiv:2401.13586).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from .chat import ChatTokens, loss_mask
from .checks import number

__all__ = ["token_counts", "generation_ratio", "ratio_means", "completion_share"]


def token_counts(
    tokenized: ChatTokens, strategy: str = "assistant", *, train_end_of_turn: bool = True
) -> tuple[int, int]:
    """``(c, p)``: completion tokens (trained under ``strategy``) and prompt tokens (all the others)."""
    if strategy == "all":
        raise ValueError("strategy 'all' has no prompt, so the generation ratio is undefined")
    m = loss_mask(tokenized, strategy, 0.0, train_end_of_turn=train_end_of_turn)
    c = int(m.sum())
    return c, len(tokenized) - c


def generation_ratio(
    tokenized: ChatTokens, strategy: str = "assistant", *, train_end_of_turn: bool = True
) -> float:
    """``Rg = c / p``: completion tokens over prompt tokens of one conversation."""
    c, p = token_counts(tokenized, strategy, train_end_of_turn=train_end_of_turn)
    if p == 0:
        raise ValueError("the conversation has no prompt token, so Rg = c / 0 is undefined")
    return c / p


def ratio_means(ratios: Iterable[float]) -> dict[str, float]:
    """Arithmetic and geometric mean of positive ratios: ``mean(r)`` and ``exp(mean(log r))``."""
    r = [float(x) for x in ratios]
    if not r:
        raise ValueError("no ratio given: the means of an empty set are undefined")
    if any(not math.isfinite(x) or x <= 0 for x in r):
        raise ValueError("ratios must be finite and > 0 for a geometric mean")
    return {
        "arithmetic": sum(r) / len(r),
        "geometric": math.exp(sum(math.log(x) for x in r) / len(r)),
        "n": len(r),
    }


def completion_share(
    completion: float | Sequence[float] | torch.Tensor,
    prompt: float | Sequence[float] | torch.Tensor,
    prompt_weight: float | torch.Tensor,
) -> torch.Tensor:
    """The completion's share of the total weight: ``sum c / (sum c + plw * sum p)``.

    ``completion``, ``prompt``: token counts, one per example (``[B]``) or scalars. For one example
    this is ``Rg / (Rg + plw)``. ``prompt_weight`` may be a tensor of plw values (``[K]`` -> ``[K]``).
    """
    c = _counts("completion", completion).sum()
    p = _counts("prompt", prompt).sum()
    if isinstance(prompt_weight, torch.Tensor):
        plw = prompt_weight.to(torch.float64)
    else:
        plw = torch.tensor(number("prompt_weight", prompt_weight), dtype=torch.float64)
    if not bool(torch.isfinite(plw).all()) or bool((plw < 0).any()) or bool((plw > 1).any()):
        raise ValueError(f"prompt_weight must lie in [0, 1], got {plw.tolist()}")
    if not bool(c > 0):
        raise ValueError("there is no completion token, so its share is undefined")
    return c / (c + plw * p)


def _counts(name: str, value: object) -> torch.Tensor:
    """Token counts as a float64 tensor: finite, >= 0; strings and bools refused by name."""
    if isinstance(value, torch.Tensor):
        t = value.to(torch.float64)
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        t = torch.tensor(number(name, value, finite=False), dtype=torch.float64)
    else:
        t = torch.tensor(
            [number(f"{name}[{i}]", v, finite=False) for i, v in enumerate(value)],
            dtype=torch.float64,
        )
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError(f"{name} must hold token counts: finite numbers >= 0, got {t.tolist()}")
    return t
