"""Explorer: error of sum / token_mean in float32, bfloat16, float16 as the token count grows."""

from __future__ import annotations

import functools
import math

import ipywidgets as W

from .. import precision
from ..devices import available_devices
from ..plots.precision import ErrorCurvesPicture
from .base import Canvas, Explorer, View

__all__ = ["precision_explorer", "render_precision"]

_DPI = 80


def _device_line(device: str, n: int, dtype: str, reduction: str, value: float) -> str:
    if device == "cpu":
        return "device cpu: the values above (the table was computed on the CPU)"
    x = precision.per_token_losses(precision.MAX_TOKENS, seed=0)[:n].to(precision.DTYPES[dtype])
    other = float(precision.torch_reduce(x.to(device), reduction).cpu())
    diff = float(precision.relative_error(other, value))
    return (
        f"device {device}: torch {reduction} = {other:.8g} (relative difference to cpu {diff:.1e})"
    )


def render_precision(
    num_tokens: float,
    dtype: str,
    reduction: str,
    device: str = "cpu",
    *,
    canvas: Canvas | None = None,
) -> View:
    """Curves for ``reduction`` with a marker at ``num_tokens``; the text gives the numbers there.

    Without ``canvas`` the figure is a new picture; the explorer passes its own canvas, which keeps
    one picture per dtype and reduction and redraws only the marker as the slider moves.
    """
    table = precision.curves()
    i = table.at(int(round(num_tokens)))
    n = int(table.ns[i])
    errors = {
        (d, m): table.error(d, reduction, m)
        for d in precision.DTYPES
        for m in precision.METHODS
        if d == dtype or m == "torch"
    }
    canvas = canvas or Canvas(dpi=_DPI)
    title = f"relative error of the {reduction} of per-token losses"
    picture = canvas.picture(
        (dtype, reduction), lambda: ErrorCurvesPicture(table.ns, errors, title=title, dpi=_DPI)
    )
    fig = picture.update(n)
    ref = float(table.reference[reduction][i])
    lines = [f"n = {n:,} tokens, float64 reference {reduction} = {ref:.8g}"]
    for method in precision.METHODS:
        v = float(table.values[(dtype, reduction, method)][i])
        err = float(table.error(dtype, reduction, method)[i])
        shown = "inf (overflow)" if math.isinf(v) else f"{v:.8g}"
        lines.append(f"{dtype} {method:<10}: {shown:<16} relative error {err:.1e}")
    stall, over = table.stall[dtype], table.overflow[dtype]
    if stall is not None:
        lines.append(f"the {dtype} running total stops moving after {stall:,} tokens")
    if over is not None:
        lines.append(f"torch.sum in {dtype} overflows to inf from {over:,} tokens")
    v_torch = float(table.values[(dtype, reduction, "torch")][i])
    lines.append(_device_line(device, n, dtype, reduction, v_torch))
    return View(
        figure=fig,
        text="\n".join(lines),
        data={"n": n, "reference": ref, "errors": {k: float(v[i]) for k, v in errors.items()}},
        png=canvas.png(picture),
    )


def precision_explorer(
    num_tokens: int = 10_000, dtype: str = "float16", reduction: str = "sum"
) -> Explorer:
    """Log-scale token-count slider (1 .. 4M), dtype, reduction and device controls."""
    top = math.log10(precision.MAX_TOKENS)
    controls = {
        "num_tokens": W.FloatLogSlider(
            value=num_tokens,
            base=10,
            min=0,
            max=top,
            step=1 / 12,
            description="tokens",
            readout_format=".3g",
            continuous_update=False,
        ),
        "dtype": W.Dropdown(options=list(precision.DTYPES), value=dtype, description="dtype"),
        "reduction": W.Dropdown(
            options=list(precision.PRECISION_REDUCTIONS), value=reduction, description="reduction"
        ),
        "device": W.Dropdown(options=available_devices(), value="cpu", description="device"),
    }
    render = functools.partial(render_precision, canvas=Canvas(dpi=_DPI))
    return Explorer(render, controls, dpi=_DPI)
