"""The RL primer's pictures: a group of answers, its advantages, the ratio's drift, the PPO clip.

Pure functions: numbers in, a ``matplotlib.figure.Figure`` out. Green is "better than the group"
(``A > 0``, pushed up), red "worse" (``A < 0``, pushed down), as in :mod:`lossviz.plots.rl`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import NullLocator

from .rl import DOWN, UP

__all__ = ["advantages_figure", "clip_figure", "group_figure", "ratio_drift_figure"]

_RIGHT, _WRONG = "#9ecae1", "0.88"  # reward 1, reward 0


def _sign_colors(values: Sequence[float]) -> list[str]:
    return [UP if v > 0 else DOWN if v < 0 else "0.6" for v in values]


def group_figure(
    answers: Sequence[Sequence[str]],
    rewards: Sequence[float],
    *,
    prompt: str = "",
    target: str = "",
) -> Figure:
    """One row per sampled answer, one box per token; blue boxes earned reward 1, grey ones 0.

    ``answers: [G]`` lists of token texts, ``rewards: [G]``; ``prompt`` and ``target`` go in the title.
    """
    if len(answers) != len(rewards):
        raise ValueError(f"{len(answers)} answers but {len(rewards)} rewards: one reward each")
    width = max((len(a) for a in answers), default=1)
    fig = Figure(figsize=(7.2, 0.42 * len(answers) + 1.3))
    ax = fig.add_axes((0.1, 0.08, 0.72, 0.72))
    for b, (tokens, reward) in enumerate(zip(answers, rewards, strict=True)):
        color = _RIGHT if reward > 0 else _WRONG
        for t, text in enumerate(tokens):
            ax.add_patch(Rectangle((t + 0.05, b - 0.4), 0.9, 0.8, color=color))
            ax.text(t + 0.5, b, text, ha="center", va="center", fontsize=9)
        ax.text(width + 0.3, b, f"reward {reward:g}", va="center", fontsize=9)
    ax.set_xlim(0, width + 0.1)
    ax.set_ylim(len(answers) - 0.5, -0.5)
    ax.set_yticks(range(len(answers)), [f"#{b}" for b in range(len(answers))], fontsize=9)
    ax.set_xticks([])
    ax.set_xlabel("the answer's tokens, </s> ends it")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    head = f"G = {len(answers)} sampled answers to " + (
        f"the prompt {prompt}" if prompt else "one prompt"
    )
    tail = f"\nthe right answer: {target}" if target else ""
    ax.set_title(head + tail, fontsize=10, loc="left")
    fig.legend(
        handles=[Patch(color=_RIGHT, label="reward 1"), Patch(color=_WRONG, label="reward 0")],
        loc="upper right",
        frameon=False,
        fontsize=9,
    )
    return fig


def advantages_figure(
    rewards: Sequence[float], advantages: Mapping[str, Sequence[float]]
) -> Figure:
    """Left: each answer's reward and the group mean. Right: its advantage under each scaling.

    ``rewards: [G]``; ``advantages``: ``{label: [G]}``, drawn side by side per answer, the first
    solid, the others hatched; bars above 0 (better than the group) green, below red.
    """
    r = np.asarray(rewards, dtype=np.float64)
    fig = Figure(figsize=(8.4, 3.0))
    left, right = fig.add_axes((0.07, 0.2, 0.3, 0.62)), fig.add_axes((0.46, 0.2, 0.34, 0.62))
    x = np.arange(len(r))
    left.bar(x, r, color=[_RIGHT if v > 0 else _WRONG for v in r], edgecolor="0.5", lw=0.5)
    left.axhline(r.mean(), color="black", ls="--", lw=1.0)
    left.text(len(r) - 0.5, r.mean(), f" mean {r.mean():.3g}", va="bottom", ha="right", fontsize=9)
    left.set_xticks(x, [f"#{b}" for b in x], fontsize=8)
    left.set_ylabel("reward")
    left.set_title("rewards and their mean", fontsize=10)
    k = len(advantages)
    width = 0.8 / max(k, 1)
    handles = []
    for i, (label, values) in enumerate(advantages.items()):
        a = np.asarray(values, dtype=np.float64)
        if a.shape != r.shape:
            raise ValueError(f"advantages {label!r} has {a.shape[0]} values for {len(r)} rewards")
        hatch = [None, "///", "..."][i % 3]
        right.bar(
            x - 0.4 + width * (i + 0.5), a, width, color=_sign_colors(a), hatch=hatch,
            edgecolor="white", lw=0.0,
        )  # fmt: skip
        handles.append(Patch(facecolor="0.7", hatch=hatch, edgecolor="white", label=label))
    right.axhline(0.0, color="0.3", lw=0.6)
    right.set_xticks(x, [f"#{b}" for b in x], fontsize=8)
    right.set_ylabel("advantage A")
    right.set_title("A = reward - mean (green > 0, red < 0)", fontsize=10)
    fig.legend(handles=handles, loc="center right", frameon=False, fontsize=8)
    return fig


def ratio_drift_figure(
    ratios: np.ndarray | Sequence[Sequence[float]],
    advantages: Sequence[float],
    *,
    epsilon: float = 0.2,
) -> Figure:
    """``r`` of every token at each optimizer step on one sampled batch: 1 at the first step.

    ``ratios: [K, n]`` (K steps, n tokens), ``advantages: [n]`` (its answer's A: green > 0, red < 0).
    The band is ``[1 - eps, 1 + eps]``, where PPO's clip lets every token through.
    """
    r = np.asarray(ratios, dtype=np.float64)
    a = np.asarray(advantages, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != a.shape[0]:
        raise ValueError(f"ratios must be [K, n] with n = {a.shape[0]} tokens, got {r.shape}")
    fig = Figure(figsize=(6.4, 3.0))
    ax = fig.add_axes((0.11, 0.17, 0.58, 0.7))
    steps = np.arange(r.shape[0])
    ax.axhspan(1 - epsilon, 1 + epsilon, color="0.9", zorder=0)
    for j in np.argsort(a, kind="stable"):  # A > 0 drawn last, on top
        color = UP if a[j] > 0 else DOWN if a[j] < 0 else "0.6"
        ax.plot(steps, r[:, j], color=color, lw=1.0, alpha=0.7, marker="o", ms=3)
    ax.set_yscale("log")
    ticks = [t for t in (0.1, 0.2, 0.5, 1 - epsilon, 1.0, 1 + epsilon, 1.5, 2, 5, 10)
             if r.min() / 1.2 <= t <= r.max() * 1.2]  # fmt: skip
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xticks(steps, [f"{k + 1}" for k in steps])
    ax.set_xlabel("optimizer step on the same sampled batch")
    ax.set_ylabel("ratio r = π_θ / π_old")
    ax.set_title("step 1 is on policy (r = 1); later steps drift", fontsize=10)
    handles = [
        Line2D([], [], color=UP, label="token of an answer\nwith A > 0"),
        Line2D([], [], color=DOWN, label="token of an answer\nwith A < 0"),
        Patch(color="0.9", label=f"1 ± ε, ε = {epsilon:g}"),
    ]
    fig.legend(handles=handles, loc="center right", frameon=False, fontsize=8)
    return fig


def clip_figure(
    ratios: Sequence[float],
    advantages: Sequence[float],
    factors: Sequence[float],
    *,
    epsilon: float = 0.2,
    r_max: float = 2.0,
) -> Figure:
    """``g(r)``, the factor PPO's clip puts on a token's push, for ``A > 0`` (left) and ``A < 0``.

    The lines are the rule (``g = r``, or 0 in the shaded clip zone); the dots are real tokens
    ``(r, g)``: ``ratios``, ``advantages``, ``factors`` are ``[n]``.
    """
    r, a, g = (np.asarray(v, dtype=np.float64) for v in (ratios, advantages, factors))
    if not r.shape == a.shape == g.shape:
        raise ValueError(
            f"ratios {r.shape}, advantages {a.shape}, factors {g.shape}: one per token"
        )
    top = max(r_max, float(r.max(initial=0.0)) * 1.05)
    fig = Figure(figsize=(8.0, 3.0))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, positive in zip(axes, (True, False), strict=True):
        color = UP if positive else DOWN
        edge = 1 + epsilon if positive else 1 - epsilon
        line = np.linspace(0, top, 400)
        keep = line <= edge if positive else line >= edge
        ax.plot(line, np.where(keep, line, 0.0), color=color, lw=1.5)
        zone = (edge, top) if positive else (0.0, edge)
        ax.axvspan(*zone, color="0.92", zorder=0)
        ax.text(sum(zone) / 2, 0.92 * top, "clipped:\ng = 0", ha="center", va="top", fontsize=8)
        pick = a > 0 if positive else a < 0
        zero = pick & (g == 0)
        ax.scatter(r[pick & ~zero], g[pick & ~zero], s=18, color=color, zorder=3)
        ax.scatter(r[zero], g[zero], s=22, facecolors="white", edgecolors=color, zorder=3)
        ax.set_xlim(0, top)
        ax.set_ylim(-0.05 * top, top)
        ax.set_xlabel("ratio r")
        sign = "A > 0: raise the token" if positive else "A < 0: lower the token"
        ax.set_title(f"{sign} (clip at r = {edge:g})", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("g(r), the factor on the push")
    fig.legend(
        handles=[
            Line2D([], [], color="0.3", marker="o", ls="", label="a token, pushed"),
            Line2D([], [], color="0.3", marker="o", ls="", mfc="white", label="a token, clipped"),
        ],
        loc="lower center",
        ncol=2,
        frameon=False,
        fontsize=8,
    )
    fig.subplots_adjust(bottom=0.27, top=0.88, left=0.08, right=0.98, wspace=0.08)
    return fig
