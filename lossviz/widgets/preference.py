"""Explorer: the weight W each token of a chosen/rejected pair gets under DPO, SimPO and IPO.

The pairs are synthetic so that the controls mean one thing each: the reference model gives every
token log-prob -1; the policy's log-prob of every chosen token is ``-1 + chosen_shift`` and of every
rejected token ``-1 + rejected_shift``. Both shifts 0 is the first step (policy = reference).
"""

from __future__ import annotations

import functools

import ipywidgets as W

from .. import preference
from ..plots.preference import PairWeightsPicture
from .base import Canvas, EdgeCase, Explorer, View, check_finite
from .rl import parse_numbers

__all__ = ["preference_explorer", "render_preference"]

MAX_PAIRS = 6
MAX_LENGTH = 512  # the longest response a length box accepts (tokens)
REFERENCE_LOGP = -1.0
LABELS = {"dpo": "DPO (sum)", "simpo": "SimPO (average)", "ipo": "IPO (TRL: average)"}


def render_preference(
    chosen_lengths: str,
    rejected_lengths: str,
    loss: str,
    beta: float = 0.1,
    gamma: float = 1.0,
    chosen_shift: float = 0.0,
    rejected_shift: float = 0.0,
    *,
    canvas: Canvas | None = None,
) -> View:
    """W for each token of each pair under ``loss``.

    Pure by default (a new Figure each call); the explorer passes its own ``canvas``, which keeps
    one picture per number of pairs and redraws only the cells and row names.
    """
    n_c = parse_numbers(chosen_lengths, int, "chosen length")
    n_r = parse_numbers(rejected_lengths, int, "rejected length")
    if len(n_c) != len(n_r):
        raise EdgeCase(f"{len(n_c)} chosen but {len(n_r)} rejected lengths: one of each per pair")
    if len(n_c) > MAX_PAIRS:
        raise EdgeCase(f"at most {MAX_PAIRS} pairs fit the picture; got {len(n_c)}")
    if min(n_c + n_r) < 1:
        raise EdgeCase("every response has at least one token (its end-of-sequence token)")
    if max(n_c + n_r) > MAX_LENGTH:
        raise EdgeCase(f"keep lengths at or below {MAX_LENGTH} tokens")
    check_finite(beta=beta, gamma=gamma, chosen_shift=chosen_shift, rejected_shift=rejected_shift)
    if not beta > 0:
        raise EdgeCase("beta must be above 0: it divides the IPO target and scales every weight")
    if loss not in preference.LOSSES:
        raise EdgeCase(f"pick one of {', '.join(preference.LOSSES)}")
    w_c, w_r, value = preference.shifted_pair_weights(
        loss,
        n_c,
        n_r,
        chosen_shift=chosen_shift,
        rejected_shift=rejected_shift,
        reference_logp=REFERENCE_LOGP,
        beta=beta,
        gamma=gamma,
    )
    check_finite(loss=value)
    canvas = canvas or Canvas()
    picture = canvas.picture(len(n_c), lambda: PairWeightsPicture(len(n_c)))
    fig = picture.update(
        w_c.numpy(), w_r.numpy(), n_c, n_r, f"{LABELS[loss]}: W on each response token"
    )
    total_c = [float(v) for v in w_c.sum(dim=1)]
    total_r = [float(v) for v in w_r.sum(dim=1)]
    lines = [
        f"{LABELS[loss]}, beta={beta:.3g}"
        + (f", gamma={gamma:.3g}" if loss == "simpo" else "")
        + f": loss {value:.4f}",
        "green: descent raises that token's log-prob; red: lowers it; grey: padding",
    ]
    for b in range(len(n_c)):
        lines.append(
            f"pair #{b}: chosen n={n_c[b]:<4} per token {float(w_c[b, 0]):+.4g}  total {total_c[b]:+.4g}"
            f" | rejected n={n_r[b]:<4} per token {float(w_r[b, 0]):+.4g}  total {total_r[b]:+.4g}"
        )
    if loss == "ipo" and any(t < 0 for t in total_c):
        lines.append(
            "IPO past its target margin 1/(2 beta): it pulls the chosen response back down"
        )
    return View(
        figure=fig,
        text="\n".join(lines),
        data={"loss": value, "chosen_total": total_c, "rejected_total": total_r},
        png=canvas.png(picture),
    )


def preference_explorer(
    chosen_lengths: str = "4, 40", rejected_lengths: str = "40, 4", loss: str = "dpo"
) -> Explorer:
    """Lengths as text, a loss dropdown, beta, SimPO's gamma and the policy's per-token shifts."""
    slider = dict(continuous_update=False, readout_format=".2f")
    controls = {
        "chosen_lengths": W.Text(
            value=chosen_lengths, description="chosen n", continuous_update=False
        ),
        "rejected_lengths": W.Text(
            value=rejected_lengths, description="rejected n", continuous_update=False
        ),
        "loss": W.Dropdown(
            options=[(LABELS[k], k) for k in preference.LOSSES], value=loss, description="loss"
        ),
        "beta": W.FloatLogSlider(value=0.1, base=10, min=-2, max=1, description="beta", **slider),
        "gamma": W.FloatSlider(
            value=1.0, min=0.0, max=3.0, step=0.1, description="gamma", **slider
        ),
        "chosen_shift": W.FloatSlider(
            value=0.0, min=-1.0, max=1.0, step=0.05, description="Δ chosen", **slider
        ),
        "rejected_shift": W.FloatSlider(
            value=0.0, min=-1.0, max=1.0, step=0.05, description="Δ rejected", **slider
        ),
    }
    render = functools.partial(render_preference, canvas=Canvas())
    return Explorer(render, controls, height="460px")
