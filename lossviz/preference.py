"""Preference losses (DPO, SimPO, IPO) through the W lens: the weight each response token gets.

A preference loss scores pairs, not tokens: pair b has a chosen response (``n_c`` tokens) and a rejected
one (``n_r`` tokens), and the loss is a function of their sequence log-probs. Still, the gradient reaches
the model only through the per-token log-probs ``logp[b, t]``; its weight on each is

    W[b, t] = dL / d l[b, t] = -dL / d logp[b, t]      (l = -logp, the token's cross-entropy)

so that, at the current point, the step is the one of the token loss ``sum W * l``: the same picture
as every SFT reduction, except that W depends on the pair's current margin (the loss is not linear
in ``l``) and is negative on the rejected tokens (descent lowers their log-probs). ``B`` pairs; every
loss is the mean over pairs, as in TRL. With ``sigma`` the logistic function:

=======  ==========================================  =====================================
loss     per pair                                    W on a chosen / rejected token
=======  ==========================================  =====================================
DPO      -log sigma(beta * (dc - dr))                +-beta * sigma(-z) / B
SimPO    -log sigma(beta * (ac - ar) - gamma)        +-beta * sigma(-z) / (B * n)
IPO      (dc / n_c - dr / n_r - 1 / (2 beta))^2      +-2 * (1 / (2 beta) - h) / (B * n)
=======  ==========================================  =====================================

``dc = sum_t logp_c - ref_c`` (the summed log-ratio to the reference model), ``ac = sum_t logp_c / n_c``
(the average log-prob, no reference), ``z`` the argument of ``sigma`` and ``h`` the IPO difference.
DPO's weight per token does not depend on length, so a response's total push grows with its length;
SimPO and IPO divide by ``n``, so each response gets the same total. IPO is written as TRL 1.16 computes
it (``loss_type="ipo"`` averages the log-ratios over the completion tokens; the paper's Eq. 17 is
written on sequence log-ratios, ``length_normalized=False``).

Sources: Rafailov et al. 2023, "Direct Preference Optimization" (arXiv 2305.18290); Meng, Xia and Chen
2024, "SimPO" (arXiv 2405.14734); Azar et al. 2023, "A General Theoretical Paradigm to Understand
Learning from Human Preferences" (arXiv 2310.12036).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "LOSSES",
    "dpo_loss",
    "ipo_loss",
    "pair_loss",
    "preference_weights",
    "sequence_logps",
    "shifted_pair_weights",
    "simpo_loss",
    "uniform_logps",
]

LOSSES = ("dpo", "simpo", "ipo")


def _check_pair(per_token: torch.Tensor, mask: torch.Tensor, what: str) -> None:
    if per_token.dim() != 2 or tuple(mask.shape) != tuple(per_token.shape):
        raise ValueError(
            f"{what}: per-token log-probs and mask must both be [B, T] of one shape; "
            f"got {tuple(per_token.shape)} and {tuple(mask.shape)}"
        )
    if bool((mask.sum(dim=1) <= 0).any()):
        raise ValueError(
            f"{what}: every response needs at least one trained token (mask row of 0s)"
        )


def _check_beta(beta: float) -> None:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise ValueError(f"beta must be a positive number, got {beta!r}")


def sequence_logps(
    per_token_logps: torch.Tensor, mask: torch.Tensor, *, average: bool = False
) -> torch.Tensor:
    """Log-prob of each response: ``sum_t m * logp`` (DPO), or divided by ``n_b`` (SimPO, IPO).

    ``per_token_logps: [B, T]``, ``mask: [B, T]`` (1 = a response token) -> ``[B]``.
    """
    _check_pair(per_token_logps, mask, "sequence_logps")
    total = (per_token_logps * mask).sum(dim=1)
    return total / mask.sum(dim=1) if average else total


def dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """DPO: ``mean_b -log sigma(beta * ((c - ref_c) - (r - ref_r)))``, summed log-probs ``[B]``."""
    _check_beta(beta)
    z = beta * ((chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps))
    return -F.logsigmoid(z).mean()


def simpo_loss(
    chosen_avg_logps: torch.Tensor,
    rejected_avg_logps: torch.Tensor,
    beta: float = 2.0,
    gamma: float = 1.0,
) -> torch.Tensor:
    """SimPO: ``mean_b -log sigma(beta * (ac - ar) - gamma)`` on average log-probs ``[B]``; no reference."""
    _check_beta(beta)
    return -F.logsigmoid(beta * (chosen_avg_logps - rejected_avg_logps) - gamma).mean()


def ipo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """IPO: ``mean_b (h - 1 / (2 beta))^2``, ``h = chosen_logratios - rejected_logratios`` ``[B]`` -> scalar.

    TRL passes log-ratios averaged over each completion's tokens; the paper's Eq. 17 uses the sums.
    """
    _check_beta(beta)
    return ((chosen_logratios - rejected_logratios - 1 / (2 * beta)) ** 2).mean()


def pair_loss(
    loss: str,
    chosen: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected: torch.Tensor,
    rejected_mask: torch.Tensor,
    *,
    ref_chosen: torch.Tensor | None = None,
    ref_rejected: torch.Tensor | None = None,
    beta: float = 0.1,
    gamma: float = 1.0,
    length_normalized: bool = True,
) -> torch.Tensor:
    """One preference loss from per-token log-probs: ``chosen: [B, Tc]``, ``rejected: [B, Tr]`` -> scalar.

    ``ref_chosen``/``ref_rejected``: the reference model's per-token log-probs (same shapes), needed by
    DPO and IPO; SimPO has no reference. ``length_normalized`` applies to IPO only (TRL's form: True).
    """
    _check_pair(chosen, chosen_mask, "chosen")
    _check_pair(rejected, rejected_mask, "rejected")
    if chosen.shape[0] != rejected.shape[0]:
        raise ValueError(f"{chosen.shape[0]} chosen but {rejected.shape[0]} rejected responses")
    if loss == "simpo":
        return simpo_loss(
            sequence_logps(chosen, chosen_mask, average=True),
            sequence_logps(rejected, rejected_mask, average=True),
            beta,
            gamma,
        )
    if loss not in LOSSES:
        raise ValueError(f"unknown preference loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if ref_chosen is None or ref_rejected is None:
        raise ValueError(
            f"{loss} needs the reference model's log-probs: pass ref_chosen, ref_rejected"
        )
    avg = loss == "ipo" and length_normalized
    dc = sequence_logps(chosen - ref_chosen, chosen_mask, average=avg)
    dr = sequence_logps(rejected - ref_rejected, rejected_mask, average=avg)
    if loss == "dpo":
        return dpo_loss(dc, dr, torch.zeros_like(dc), torch.zeros_like(dr), beta)
    return ipo_loss(dc, dr, beta)


def preference_weights(
    loss: str,
    chosen: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected: torch.Tensor,
    rejected_mask: torch.Tensor,
    *,
    ref_chosen: torch.Tensor | None = None,
    ref_rejected: torch.Tensor | None = None,
    beta: float = 0.1,
    gamma: float = 1.0,
    length_normalized: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_chosen [B, Tc], W_rejected [B, Tr])`` with ``W = -dL/d logp`` of :func:`pair_loss`.

    Closed forms (module docstring): a token of a chosen response gets ``+s_b / n`` (SimPO, IPO) or
    ``+s_b`` (DPO), a token of the rejected one the negative; ``s_b`` is the pair's current slope
    ``beta * sigma(-z_b) / B`` (DPO, SimPO) or ``2 * (1 / (2 beta) - h_b) / B`` (IPO). 0 on padding.
    """
    _check_pair(chosen, chosen_mask, "chosen")
    _check_pair(rejected, rejected_mask, "rejected")
    n_c, n_r = chosen_mask.sum(dim=1), rejected_mask.sum(dim=1)
    pairs = chosen.shape[0]
    if loss == "simpo":
        _check_beta(beta)
        ac = sequence_logps(chosen, chosen_mask, average=True)
        ar = sequence_logps(rejected, rejected_mask, average=True)
        slope = beta * torch.sigmoid(-(beta * (ac - ar) - gamma)) / pairs
        per_c, per_r = slope / n_c, slope / n_r
    elif loss in ("dpo", "ipo"):
        if ref_chosen is None or ref_rejected is None:
            raise ValueError(
                f"{loss} needs the reference model's log-probs: pass ref_chosen, ref_rejected"
            )
        _check_beta(beta)
        avg = loss == "ipo" and length_normalized
        dc = sequence_logps(chosen - ref_chosen, chosen_mask, average=avg)
        dr = sequence_logps(rejected - ref_rejected, rejected_mask, average=avg)
        if loss == "dpo":
            slope = beta * torch.sigmoid(-beta * (dc - dr)) / pairs
            per_c, per_r = slope, slope
        else:
            slope = 2 * (1 / (2 * beta) - (dc - dr)) / pairs
            per_c, per_r = (slope / n_c, slope / n_r) if avg else (slope, slope)
    else:
        raise ValueError(f"unknown preference loss {loss!r}; choose one of {', '.join(LOSSES)}")
    w_c = per_c.unsqueeze(1) * chosen_mask
    w_r = -per_r.unsqueeze(1) * rejected_mask
    return w_c + 0.0, w_r + 0.0  # + 0.0 turns -0.0 on padding into 0.0


def uniform_logps(lengths: list[int], value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp [B, T], mask [B, T])``, float64: response b's ``lengths[b]`` tokens at ``value``, padding 0.

    ``T = max(lengths)``; ``mask[b, t] = 1`` for ``t < lengths[b]``.
    """
    if not lengths or min(lengths) < 1:
        raise ValueError(f"every response needs at least one token; got lengths {lengths}")
    width = max(lengths)
    mask = (torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).double()
    return mask * value, mask


def shifted_pair_weights(
    loss: str,
    chosen_lengths: list[int],
    rejected_lengths: list[int],
    *,
    chosen_shift: float = 0.0,
    rejected_shift: float = 0.0,
    reference_logp: float = -1.0,
    beta: float = 0.1,
    gamma: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(W_chosen [B, Tc], W_rejected [B, Tr], loss)`` for pairs whose every token moved alike.

    The reference model gives every token the log-prob ``reference_logp``; the policy gives each
    chosen token ``reference_logp + chosen_shift`` and each rejected one ``reference_logp +
    rejected_shift`` (both shifts 0: the first step, policy = reference). ``W`` as in
    :func:`preference_weights`, the loss as :func:`pair_loss`.
    """
    if len(chosen_lengths) != len(rejected_lengths):
        raise ValueError(
            f"{len(chosen_lengths)} chosen but {len(rejected_lengths)} rejected lengths: "
            "one of each per pair"
        )
    chosen, chosen_mask = uniform_logps(chosen_lengths, reference_logp + chosen_shift)
    rejected, rejected_mask = uniform_logps(rejected_lengths, reference_logp + rejected_shift)
    ref_c, _ = uniform_logps(chosen_lengths, reference_logp)
    ref_r, _ = uniform_logps(rejected_lengths, reference_logp)
    args = (chosen, chosen_mask, rejected, rejected_mask)
    kw = dict(ref_chosen=ref_c, ref_rejected=ref_r, beta=float(beta), gamma=float(gamma))
    w_c, w_r = preference_weights(loss, *args, **kw)
    return w_c, w_r, float(pair_loss(loss, *args, **kw))
