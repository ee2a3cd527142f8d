"""Explorer: per-token gradient weight of a group of responses under each RL aggregation mode."""

from __future__ import annotations

import functools

import ipywidgets as W

from .. import rl
from ..plots.rl import GradientWeightsPicture
from .base import Canvas, EdgeCase, Explorer, View, check_finite, parse_list

__all__ = ["parse_numbers", "render_rl", "rl_explorer"]

MAX_RESPONSES = 16
MAX_LENGTH = 4096  # the longest response a length box accepts (tokens)


def parse_numbers(text: str, kind: type, what: str) -> list:
    """``"10, 100 ,3"`` -> ``[10, 100, 3]``; an :class:`EdgeCase` that says what is wrong otherwise."""
    values = parse_list(text, what, kind=kind, example="20, 200" if kind is int else "1, -1")
    if len(values) > MAX_RESPONSES:
        raise EdgeCase(f"at most {MAX_RESPONSES} responses fit the picture; got {len(values)}")
    return values


def _advantage(a: float) -> str:
    """``+1.00`` for everyday values; ``+1.00e+300`` / ``+1.00e-08`` when two decimals would mislead."""
    return f"{a:+.2f}" if a == 0 or 0.01 <= abs(a) < 1e4 else f"{a:+.2e}"


def render_rl(
    lengths: str,
    advantages: str,
    mode: str,
    max_length: int = 1024,
    *,
    canvas: Canvas | None = None,
) -> View:
    """Gradient weight per token and per response for one group under ``mode``.

    Pure by default (a new Figure each call); the explorer passes its own ``canvas``, which keeps
    one picture and redraws only the bars and their names.
    """
    ns = parse_numbers(lengths, int, "length")
    adv = parse_numbers(advantages, float, "advantage")
    if len(ns) != len(adv):
        raise EdgeCase(
            f"{len(ns)} lengths but {len(adv)} advantages: give one advantage per response"
        )
    check_finite(**{f"advantage {b}": a for b, a in enumerate(adv)})
    if min(ns) < 1:
        raise EdgeCase("every response has at least one token (its end-of-sequence token)")
    if max(ns) > MAX_LENGTH:
        raise EdgeCase(f"keep lengths at or below {MAX_LENGTH} tokens")
    m = rl.resolve_mode(mode)
    if m.uses_max_length and max_length < max(ns):
        raise EdgeCase(
            f"max_length={max_length} is shorter than the longest response ({max(ns)}): the trainer "
            "would have cut that response; raise max_length"
        )
    mask = rl.response_mask(ns, max_length=max(max_length, max(ns)))
    push = rl.sample_push(mask, adv, m, max_length=max_length)
    g = rl.gradient_weights(mask, adv, m, max_length=max_length)
    per_token = [float(g[b, 0]) for b in range(len(ns))]
    total = [float(v) for v in g.sum(dim=1)]
    check_finite(**{f"the gradient weight of response {b}": v for b, v in enumerate(total)})
    title = f"{m.project} {m.option}={m.name}"
    canvas = canvas or Canvas()
    picture = canvas.picture("rl", GradientWeightsPicture)
    fig = picture.update(ns, per_token, title)
    lines = [
        f"{m.project} {m.option}={m.name} = lossviz {m.reduction}; divides by {m.normalizer}",
        "bars: the push on one token, -dL/dlog π: green and up, descent raises that response's "
        "log-probs; red and down, it lowers them",
    ]
    for b, (n, a) in enumerate(zip(ns, adv, strict=True)):
        lines.append(
            f"#{b}: n={n:<5} A={_advantage(a)}  push per token {-per_token[b]:+.3e}  "
            f"whole response {-total[b]:+.3e}"
        )
    if all(a == 0 for a in adv):
        lines.append("every advantage is 0: no response is pushed (a group with equal rewards)")
    return View(
        figure=fig,
        text="\n".join(lines),
        data={"per_token": per_token, "total": total, "per_token_abs": push["per_token"].tolist()},
        png=canvas.png(picture),
    )


def rl_explorer(
    lengths: str = "20, 200, 20, 200", advantages: str = "1, 1, -1, -1", mode: str = "trl:grpo"
) -> Explorer:
    """Text boxes for lengths and advantages, a mode dropdown, and max_length for the constant modes."""
    controls = {
        "lengths": W.Text(value=lengths, description="lengths", continuous_update=False),
        "advantages": W.Text(value=advantages, description="advantages", continuous_update=False),
        "mode": W.Dropdown(options=rl.mode_names(), value=mode, description="mode"),
        "max_length": W.IntSlider(
            value=1024, min=1, max=MAX_LENGTH, description="max_length", continuous_update=False
        ),
    }
    return Explorer(functools.partial(render_rl, canvas=Canvas()), controls)
