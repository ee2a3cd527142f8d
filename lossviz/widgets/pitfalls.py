"""Explorer: pick a trainer setup users complain about and see its W beside the global token mean.

``render_pitfall`` is pure: lossviz's model of each setup (:func:`lossviz.measured_step.predict`,
each one checked against a real ``Trainer`` step by the probe's tests and the cached version table)
on the Trainer's dealing (:func:`lossviz.step_shape.trainer_dealing`); nothing is trained, so it answers
at once for any GA and world size. The explorer passes its own :class:`~lossviz.widgets.Canvas`.
"""

from __future__ import annotations

import functools

import ipywidgets as W

from ..measured_step import predict
from ..plots.probe import MeasuredVsPredictedPicture
from ..step_shape import fill_step, trainer_dealing
from .base import Canvas, EdgeCase, Explorer, View, parse_list

__all__ = ["SETUPS", "pitfall_explorer", "render_pitfall"]

# what the user did -> lossviz's normalization of it (see lossviz.measured_step.MODELS)
SETUPS = {
    "transformers 5.24 defaults": "global",
    "average_tokens_across_devices=False": "local",
    "compute_loss returns model(**inputs).loss": "unscaled",
    "model forward without **kwargs": "naive",
    "transformers 4.48 to 5.9 (+1 token per row)": "global_overcount",
}


def _height(samples: int) -> float:
    """Figure height (inches): one for every step up to 16 samples, then 0.16 inch a sample."""
    return 4.2 if samples <= 16 else 1.75 + 0.16 * samples


def render_pitfall(
    setup: str = "transformers 5.24 defaults",
    lengths: str = "3, 7, 20, 5",
    batch: int = 1,
    ga: int = 2,
    world: int = 2,
    *,
    canvas: Canvas | None = None,
) -> View:
    """``W`` of one optimizer step under ``setup`` beside the global token mean (both lossviz's).

    Without ``canvas`` the picture is a new Figure; the explorer passes its own canvas, which keeps
    one picture per figure height and redraws only the cells and bars.
    """
    if setup not in SETUPS:
        raise EdgeCase(f"choose a setup among {list(SETUPS)}")
    need = batch * ga * world  # samples in one optimizer step
    got, filled = fill_step(
        parse_list(lengths, "length", low=1, high=400, example="3, 7, 20, 5"), need
    )
    plan = trainer_dealing(need, per_device_batch_size=batch, ga_steps=ga, world_size=world)
    model = SETUPS[setup]
    extra = 1 if model.endswith("_overcount") else 0
    got_w = predict(got, plan, model.removesuffix("_overcount"), extra_per_row=extra)
    right = predict(got, plan, "global")
    canvas = canvas or Canvas()
    height = _height(need)
    picture = canvas.picture(
        height,
        lambda: MeasuredVsPredictedPicture(
            height, dpi=canvas.dpi, labels=("this setup", "global mean")
        ),
    )
    fig = picture.update(got_w, right, titles=(setup, "intended: global token mean"))
    shares = [sum(row) for row in got_w]
    total = sum(shares)
    text = (
        f"total weight {total:.3f} (1 for a mean; the loss and the gradient scale with it); "
        "sample shares "
        + ", ".join(f"{s:.3f}" for s in shares)
        + "\nglobal token mean: "
        + ", ".join(f"{sum(row):.3f}" for row in right)
        + (f"\n({filled}: {', '.join(map(str, got))})" if filled else "")
    )
    return View(
        figure=fig,
        text=text,
        data={"W": got_w, "global": right, "total": total},
        png=canvas.png(picture),
    )


def pitfall_explorer() -> Explorer:
    """Setup, lengths, batch, GA and world-size controls over :func:`render_pitfall`."""
    style = {"description_width": "initial"}
    controls = {
        "setup": W.Dropdown(
            options=list(SETUPS), value="transformers 5.24 defaults", description="setup"
        ),
        "lengths": W.Text(value="3, 7, 20, 5", description="lengths", continuous_update=False),
        "batch": W.IntSlider(1, 1, 4, description="batch", continuous_update=False, style=style),
        "ga": W.IntSlider(2, 1, 4, description="GA", continuous_update=False, style=style),
        "world": W.IntSlider(2, 1, 4, description="ranks", continuous_update=False, style=style),
    }
    render = functools.partial(render_pitfall, canvas=Canvas())
    # not ahead: a step of more than 16 samples needs a taller picture of its own (~0.3 s to build)
    return Explorer(render, controls, height="360px", draw_ahead=_one_picture)


def _one_picture(values: dict) -> bool:
    return values["batch"] * values["ga"] * values["world"] <= 16
