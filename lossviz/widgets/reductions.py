"""The reduction explorer: choose lengths, padding and a reduction, and see who gets the weight.

``reduction_explorer()`` returns an :class:`~lossviz.widgets.Explorer`; ``render_reduction`` is its pure
render function, tested without a kernel. The token losses come from seeded random logits that belong
to the *samples* (sample b's j-th token has the same logits however the batch is laid out), so every
reduction that does not look at the padding gives the same loss for right, left and packed batches.
"""

from __future__ import annotations

import functools

import ipywidgets as W
import torch

from ..batching import mask_from_lengths, pack_lengths
from ..cross_entropy import token_losses
from ..devices import available_devices, describe_devices, resolve_device
from ..plots.reductions import ReductionPicture
from ..reductions import REDUCTIONS, sample_weights, weights
from .base import Canvas, EdgeCase, Explorer, View, check_finite

__all__ = [
    "MAX_SAMPLES",
    "MAX_LENGTH",
    "LAYOUTS",
    "sample_logits",
    "render_reduction",
    "reduction_explorer",
]

MAX_SAMPLES = 6
MAX_LENGTH = 24
VOCAB = 32
LAYOUTS = ("right", "left", "packed")
DEFAULT_LENGTHS = (3, 12, 6, 20, 1, 9)


@functools.lru_cache(maxsize=8)
def sample_logits(seed: int = 0, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded per-sample logits ``[MAX_SAMPLES, MAX_LENGTH, V]`` and labels ``[MAX_SAMPLES, MAX_LENGTH]``.

    Drawn on the CPU with its own generator (the same numbers on every device), then moved.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(MAX_SAMPLES, MAX_LENGTH, VOCAB, generator=gen)
    labels = torch.randint(0, VOCAB, (MAX_SAMPLES, MAX_LENGTH), generator=gen)
    return logits.to(device), labels.to(device)


def _layout(lengths: list[int], padding: str, multiple: int | None):
    """``mask, sample_ids, index`` for the chosen layout; ``index[b, t]`` = (sample, token) or -1."""
    if padding == "packed":
        row = 2 * (max(lengths) + 1)  # room for about two long samples per row
        row = -(-row // multiple) * multiple if multiple else row
        mask, ids = pack_lengths(lengths, row)
        cols = torch.arange(row).expand_as(ids)
        # a piece starts with its unlabelled token, so its j-th trained token sits at start + 1 + j
        start = torch.zeros(len(lengths), dtype=torch.long)
        for b in range(len(lengths)):
            start[b] = cols[ids == b].min()
        token = cols - start[ids.clamp_min(0)] - 1
        return mask, ids, ids.clamp_min(0), token.clamp(0, MAX_LENGTH - 1)
    mask = mask_from_lengths(lengths, padding, multiple)
    rows = torch.arange(len(lengths)).unsqueeze(1).expand_as(mask)
    token = (mask.cumsum(1) - 1).clamp_min(0).long()
    ids = torch.where(mask > 0, rows, -1)
    return mask, ids, rows, token


@functools.lru_cache(maxsize=64)
def _batch_losses(ns: tuple[int, ...], padding: str, multiple: int | None, device: str, seed: int):
    """``mask, sample_ids, token losses [B, T]`` (CPU) and the loss under every reduction.

    Cached: none of it depends on the chosen reduction, so switching reductions (or returning to
    a setting) skips the torch work.
    """
    dev = torch.device(device)
    mask, ids, who, pos = _layout(list(ns), padding, multiple)
    all_logits, all_labels = sample_logits(seed, device)
    who, pos = who.to(dev), pos.to(dev)
    labels = torch.where(mask.to(dev) > 0, all_labels[who, pos], -100)
    losses_bt = token_losses(all_logits[who, pos], labels)
    m, sid = mask.to(dev), ids.to(dev) if padding == "packed" else None
    losses = {}
    for name in REDUCTIONS:
        try:
            losses[name] = float((weights(m, name, sample_ids=sid) * losses_bt).sum())
        except (ValueError, TypeError):  # a reduction that needs parameters the explorer lacks
            losses[name] = float("nan")
    return mask, ids, losses_bt.cpu(), losses


def render_reduction(
    num_samples: int = 3,
    padding: str = "right",
    pad_to_multiple_of: int = 1,
    reduction: str = "token_mean",
    device: str = "cpu",
    seed: int = 0,
    dpi: int = 80,
    canvas: Canvas | None = None,
    **lengths: int,
) -> View:
    """Heatmap of ``W``, per-sample shares and the loss under every reduction, for one batch.

    ``lengths``: ``length_0 ... length_{MAX_SAMPLES-1}`` (the first ``num_samples`` are used).
    ``View.data`` holds ``lengths``, ``mask``, ``sample_ids``, ``W``, ``shares``, ``losses``, ``device``.
    Without ``canvas`` the picture is a new Figure; the explorer passes its own canvas, which keeps
    one picture and redraws only what moved.
    """
    if not 1 <= int(num_samples) <= MAX_SAMPLES:
        raise EdgeCase(f"choose between 1 and {MAX_SAMPLES} samples")
    ns = [int(lengths.get(f"length_{b}", DEFAULT_LENGTHS[b])) for b in range(int(num_samples))]
    if min(ns) < 1 or max(ns) > MAX_LENGTH:
        raise EdgeCase(f"every sample needs between 1 and {MAX_LENGTH} trained tokens")
    multiple = int(pad_to_multiple_of) if int(pad_to_multiple_of) > 1 else None
    dev = resolve_device(device)
    mask, ids, losses_bt, losses = _batch_losses(tuple(ns), padding, multiple, str(dev), int(seed))
    mask, ids, losses = mask.clone(), ids.clone(), dict(losses)  # the cache's copies stay intact
    packed = ids if padding == "packed" else None
    w = weights(mask, reduction, sample_ids=packed)
    shares = sample_weights(mask, reduction, sample_ids=packed)
    check_finite(loss=losses[reduction], **{f"share_{b}": float(s) for b, s in enumerate(shares)})
    canvas = canvas or Canvas(dpi=dpi)
    picture = canvas.picture(dpi, lambda: ReductionPicture(MAX_SAMPLES, dpi=dpi))
    fig = picture.update(w, (ids < 0).numpy(), shares.tolist(), ns, reduction)
    N = sum(ns)
    lines = [
        f"{len(ns)} samples, N = {N} trained tokens, batch {tuple(mask.shape)} ({padding}), "
        f"{int((ids < 0).sum())} padding positions; losses computed on {dev}.",
        f"shares under {reduction}: " + ", ".join(f"{float(s):.3f}" for s in shares),
        "loss of the same token losses under every reduction:",
    ]
    for name, value in losses.items():
        shown = f"{value:10.4f}" if value == value else "       n/a"
        lines.append(f"  {name:<20}{shown}" + ("   <- chosen" if name == reduction else ""))
    text = "\n".join(lines)
    data = {
        "lengths": ns,
        "mask": mask,
        "sample_ids": ids,
        "W": w,
        "shares": shares,
        "losses": losses,
        "device": str(dev),
        "token_losses": losses_bt.clone(),
    }
    return View(figure=fig, text=text, data=data, png=canvas.png(picture))


def reduction_explorer(num_samples: int = 3, reduction: str = "token_mean") -> Explorer:
    """Sliders for the number of samples and each length; padding, multiple, reduction, device."""
    style = {"description_width": "initial"}
    n = W.IntSlider(num_samples, 1, MAX_SAMPLES, description="samples", style=style)
    lengths = {
        f"length_{b}": W.IntSlider(
            DEFAULT_LENGTHS[b], 1, MAX_LENGTH, description=f"length of sample {b}", style=style
        )
        for b in range(MAX_SAMPLES)
    }
    devices = available_devices()
    controls = {
        "num_samples": n,
        **lengths,
        "padding": W.ToggleButtons(options=list(LAYOUTS), value="right", description="padding"),
        "pad_to_multiple_of": W.Dropdown(
            options=[1, 4, 8, 16], value=1, description="pad to multiple of", style=style
        ),
        "reduction": W.Dropdown(options=list(REDUCTIONS), value=reduction, description="reduction"),
        "device": W.Dropdown(
            options=devices,
            value=devices[0],
            description="device" if len(devices) > 1 else "device (CPU only)",
            disabled=len(devices) == 1,
            style=style,
        ),
    }

    def show_lengths(change: object = None) -> None:
        for b, slider in enumerate(lengths.values()):
            slider.layout.display = None if b < n.value else "none"

    n.observe(show_lengths, names="value")
    show_lengths()
    left = W.VBox([n, *lengths.values()])
    right = W.VBox(
        [
            controls["padding"],
            controls["pad_to_multiple_of"],
            controls["reduction"],
            controls["device"],
            W.HTML(f"<small>{describe_devices()}</small>"),
        ]
    )
    render = functools.partial(render_reduction, canvas=Canvas())
    return Explorer(render, controls, layout=W.HBox([left, right]), height="300px")
