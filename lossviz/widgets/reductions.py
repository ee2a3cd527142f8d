"""The reduction explorer: choose lengths, padding and a reduction, and see who gets the weight.

``reduction_explorer()`` returns an :class:`~lossviz.widgets.Explorer`; ``render_reduction`` is its pure
render function, tested without a kernel. The token losses come from seeded random logits that belong
to the *samples* (sample b's j-th token has the same logits however the batch is laid out), so every
reduction that does not look at the padding gives the same loss for right, left and packed batches.
"""

from __future__ import annotations

import functools

import ipywidgets as W

from ..batching import BATCH_LAYOUTS, laid_out_token_losses, lay_out, sample_logits
from ..devices import available_devices, describe_devices, resolve_device
from ..plots.reductions import ReductionPicture
from ..reductions import REDUCTIONS, losses_by_reduction, sample_weights, weights
from .base import Canvas, EdgeCase, Explorer, View, check_finite

__all__ = [
    "MAX_SAMPLES",
    "MAX_LENGTH",
    "BATCH_LAYOUTS",
    "render_reduction",
    "reduction_explorer",
]

MAX_SAMPLES = 6
MAX_LENGTH = 24  # the longest sample a length slider offers (trained tokens)
VOCAB = 32
DEFAULT_LENGTHS = (3, 12, 6, 20, 1, 9)


def _batch_losses(ns: tuple[int, ...], padding: str, multiple: int | None, device: str, seed: int):
    """``LaidOut``, token losses ``[B, T]`` (CPU) and the loss under every reduction.

    Remembered by the explorer's canvas: none of it depends on the chosen reduction, so switching
    reductions (or returning to a setting) skips the torch work.
    """
    laid = lay_out(ns, padding, multiple)
    logits, labels = sample_logits(MAX_SAMPLES, MAX_LENGTH, VOCAB, seed=seed, device=device)
    losses_bt = laid_out_token_losses(laid, logits, labels)
    packed = laid.sample_ids if padding == "packed" else None
    return laid, losses_bt.cpu(), losses_by_reduction(losses_bt, laid.mask, sample_ids=packed)


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
    canvas = canvas or Canvas(dpi=dpi)
    args = (tuple(ns), padding, multiple, str(dev), int(seed))
    laid, losses_bt, losses = canvas.memo(_batch_losses, *args)
    # copies: what a caller does with View.data never reaches the remembered results
    mask, ids, losses = laid.mask.clone(), laid.sample_ids.clone(), dict(losses)
    packed = ids if padding == "packed" else None
    w = weights(mask, reduction, sample_ids=packed)
    shares = sample_weights(mask, reduction, sample_ids=packed)
    check_finite(loss=losses[reduction], **{f"share_{b}": float(s) for b, s in enumerate(shares)})
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
        "padding": W.ToggleButtons(
            options=list(BATCH_LAYOUTS), value="right", description="padding"
        ),
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
    box = W.HBox([left, right])
    return Explorer(render, controls, layout=box, height="300px", draw_ahead=True)
