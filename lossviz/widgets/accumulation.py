"""Explorer: what each sample weighs under gradient accumulation and data parallelism.

Controls: sample lengths, micro-batch size, GA steps, world size, normalization, device. The bars
show every sample's weight in one optimizer step (full batch vs naive vs global); the text under
them gives, on the tiny model, how far the chosen normalization's gradient lies from the
full-batch one, next to the float-rounding distance of the global fix. The intended loss is the token mean.
"""

from __future__ import annotations

import functools
import math

import ipywidgets as W

from ..accumulation import NORMALIZATIONS, accumulation_weights
from ..batching import mask_from_lengths
from ..devices import available_devices, describe_devices
from ..model import TinyConfig
from ..plots.accumulation import WeightBars
from ..reductions import sample_weights
from ..step_gradients import ga_gradient_distances
from ..step_shape import deal, fill_step, locate
from .base import Canvas, EdgeCase, Explorer, View, check_finite, parse_list

__all__ = ["render_accumulation", "accumulation_explorer", "GRADIENT_TOKEN_BUDGET"]

GRADIENT_TOKEN_BUDGET = 1200  # above this many tokens the gradient panel would slow the slider
GRADIENT_MAX_MICRO_BATCHES = 8  # each micro-batch is one more forward/backward per update
# Attention costs rows x width^2 per pass (padding included): the full batch pads every row to the
# longest sample. Above this many attention cells (full batch + micro-batches) the gap is skipped.
GRADIENT_CELL_BUDGET = 600_000
MAX_SAMPLES = 32  # more bars than this are unreadable at this size
MAX_LENGTH = 512
# A smaller model than the default keeps one gradient comparison near 20 ms on a laptop CPU; one
# head halves the attention softmax and mask work, which dominates at a few hundred tokens.
_WIDGET_MODEL = TinyConfig(
    vocab_size=32, d_model=16, n_heads=1, n_layers=1, context_length=MAX_LENGTH + 1
)
_COLUMNS = ("full batch", "naive", "global")


def _parse_lengths(text: str) -> list[int]:
    return parse_list(text, "length", low=1, high=MAX_LENGTH, example="12, 40, 7, 300")


def _attention_cells(lengths: list[int], plan: list[list[list[int]]]) -> int:
    """Rows x padded width^2 of the full-batch pass plus every micro-batch pass."""
    full = len(lengths) * (max(lengths) + 1) ** 2
    parts = sum(len(mb) * (max(lengths[i] for i in mb) + 1) ** 2 for r in plan for mb in r if mb)
    return full + parts


def _gaps(lengths: tuple, G: int, R: int, normalize: str, device: str) -> dict[str, float]:
    """L2 distance to the full-batch gradient: the global fix (float rounding) and ``normalize``."""
    dist = ga_gradient_distances(
        list(lengths),
        ga_steps=G,
        world_size=R,
        normalizations=("global", normalize),
        config=_WIDGET_MODEL,
        device=device,
    )
    return {f"{n} GA" + (" (float rounding)" if n == "global" else ""): v for n, v in dist.items()}


def _columns(lengths: tuple, G: int, R: int) -> dict[str, list[float]]:
    """Per-sample weights ``[B]`` of one step: full batch, naive and global GA (any normalization)."""
    mask = mask_from_lengths(list(lengths))
    cols = {"full batch": sample_weights(mask, "token_mean")}
    for n in ("naive", "global"):
        cols[n] = accumulation_weights(mask, normalize=n, ga_steps=G, world_size=R).sum(1)
    return {k: v.tolist() for k, v in cols.items()}


def render_accumulation(
    lengths: str = "12, 40, 7, 300",
    per_device_batch_size: int = 1,
    ga_steps: int = 4,
    world_size: int = 1,
    normalization: str = "naive",
    device: str = "cpu",
    *,
    canvas: Canvas | None = None,
) -> View:
    """Per-sample weights of one step (full batch, naive, global) and the gradient gap.

    Without ``canvas`` the bars are a new Figure; the explorer passes its own canvas, which keeps
    one :class:`WeightBars` and redraws only what moved.
    """
    pool = _parse_lengths(lengths)
    if normalization not in NORMALIZATIONS:
        raise EdgeCase(f"choose a normalization among {NORMALIZATIONS}")
    B = per_device_batch_size * ga_steps * world_size
    if B > MAX_SAMPLES:
        raise EdgeCase(
            f"{per_device_batch_size} x {ga_steps} x {world_size} = {B} samples is more than "
            f"{MAX_SAMPLES} bars can show; lower the micro-batch size, GA steps or world size"
        )
    batch_lengths = fill_step(pool, B, cut=True)[0]
    mask = mask_from_lengths(batch_lengths)
    plan = deal(B, ga_steps=ga_steps, world_size=world_size)
    where = locate(plan)
    canvas = canvas or Canvas()
    cols = canvas.memo(_columns, tuple(batch_lengths), ga_steps, world_size)
    ratio = [n / f for n, f in zip(cols["naive"], cols["full batch"], strict=True)]
    worst = max(range(B), key=lambda i: abs(math.log(ratio[i])))
    check_finite(worst_ratio=ratio[worst])
    gaps = None
    lines = [
        f"{B} samples = micro-batch {per_device_batch_size} x GA {ga_steps} x ranks {world_size}"
        + (f" (your {len(pool)} lengths repeated to fill them)" if len(pool) != B else "")
        + f"; {int(mask.sum())} trained tokens.",
        f"Naive accumulation: sample {worst} ({batch_lengths[worst]} tokens) weighs "
        f"{ratio[worst]:.2f}x its full-batch weight; global: exactly 1x.",
    ]
    small = ga_steps * world_size <= GRADIENT_MAX_MICRO_BATCHES
    small = small and sum(batch_lengths) <= GRADIENT_TOKEN_BUDGET
    if small and _attention_cells(batch_lengths, plan) <= GRADIENT_CELL_BUDGET:
        gaps = canvas.memo(_gaps, tuple(batch_lengths), ga_steps, world_size, normalization, device)
        # float rounding is shown as the bound it stays under: its digits differ from CPU to CPU
        text = ", ".join(f"{k}: {v:.1e}" if v >= 1e-6 else f"{k}: < 1e-6" for k, v in gaps.items())
        lines.append(f"Gradient distance to the full batch (L2, tiny model on {device}): {text}.")
    else:
        lines.append(
            f"Gradient gap skipped to keep updates fast: it runs for at most "
            f"{GRADIENT_MAX_MICRO_BATCHES} micro-batches (GA x ranks), "
            f"{GRADIENT_TOKEN_BUDGET} tokens, and not when one long sample pads many short ones."
        )
    lines.append("Sample i runs on rank i mod ranks.")
    bars = canvas.picture(_COLUMNS, lambda: WeightBars(_COLUMNS))
    fig = bars.update(
        batch_lengths,
        cols,
        placement=[where[i] for i in range(B)],
        title="each sample's weight in one optimizer step",
    )
    data = {
        "lengths": batch_lengths,
        **cols,
        "ratio": ratio,
        "gaps": gaps,
    }
    return View(figure=fig, text="\n".join(lines), data=data, png=canvas.png(bars))


def accumulation_explorer(
    lengths: str = "12, 40, 7, 300",
    *,
    per_device_batch_size: int = 1,
    ga_steps: int = 4,
    world_size: int = 1,
    normalization: str = "naive",
) -> Explorer:
    """The explorer of notebooks 04 and 05, starting at these values; controls update on release."""
    style = {"description_width": "initial"}

    def slider(desc: str, value: int, hi: int) -> W.IntSlider:
        return W.IntSlider(
            value=value, min=1, max=hi, description=desc, continuous_update=False, style=style
        )

    controls = {
        "lengths": W.Text(
            value=lengths, description="sample lengths", continuous_update=False, style=style
        ),
        "per_device_batch_size": slider("micro-batch size", per_device_batch_size, 4),
        "ga_steps": slider("GA steps", ga_steps, 8),
        "world_size": slider("world size", world_size, 4),
        "normalization": W.ToggleButtons(options=list(NORMALIZATIONS), value=normalization),
        "device": W.Dropdown(
            options=available_devices(),
            value="cpu",
            description="device",
            tooltip=describe_devices(),
        ),
    }
    render = functools.partial(render_accumulation, canvas=Canvas())
    return Explorer(render, controls, height="380px", draw_ahead=True)
