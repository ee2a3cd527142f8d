"""Explorer: run the real transformers Trainer for one step and see the weights the probe measures.

``render_probe`` is pure (each call is one real ``Trainer`` step in this process); the explorer
passes its own :class:`~lossviz.widgets.Canvas`, which remembers the finished runs and keeps one
picture whose frames are drawn once. ``probe_explorer()`` wires it to a case, lengths, batch and GA.
"""

from __future__ import annotations

import functools

import ipywidgets as W

from ..measured_step import verdict
from ..plots.probe import MeasuredVsPredictedPicture
from ..step_shape import fill_step as cycle_to
from ..trainers.hf_trainer import measure
from .base import Canvas, EdgeCase, Explorer, View, parse_list

__all__ = ["render_probe", "probe_explorer"]

_CASE_TEXT = {
    "ga": "a transformers model (num_items_in_batch)",
    "naive": "a model whose forward takes no **kwargs",
    "compute_loss": "a compute_loss that returns model(**inputs).loss",
    "packed": "DataCollatorWithFlattening (packed, position_ids)",
}
# one figure height for every batch x GA (up to 16 samples): one picture serves every setting
_HEIGHT = 4.2


def _measure(case: str, lengths: tuple[int, ...], batch: int, ga: int) -> dict:
    return measure(list(lengths), per_device_batch_size=batch, ga_steps=ga, case=case)


def render_probe(
    case: str = "ga",
    lengths: str = "3,7,20,5",
    batch: int = 2,
    ga: int = 2,
    *,
    canvas: Canvas | None = None,
) -> View:
    """Measured vs predicted (lossviz's model of 5.24 for ``case``) W of one real Trainer step."""
    if case not in _CASE_TEXT:
        raise EdgeCase(f"choose a case among {list(_CASE_TEXT)}")
    # every setting runs a real Trainer step: at most 400 tokens per sample keeps it short
    typed = parse_list(lengths, "length", low=1, high=400, example="3, 7, 20, 5")
    got, filled = cycle_to(typed, batch * ga)  # batch x GA samples make one step
    canvas = canvas or Canvas()
    r = canvas.memo(_measure, case, tuple(got), batch, ga)
    picture = canvas.picture("probe", lambda: MeasuredVsPredictedPicture(_HEIGHT, dpi=canvas.dpi))
    fig = picture.update(
        r["measured"],
        r["predicted"]["global"],
        titles=(f"measured: {case}", "intended: global token mean"),
    )
    shares = r["diff"]["global"]["measured_share"]
    text = (
        f"{_CASE_TEXT[case]}; sample shares measured "
        + ", ".join(f"{s:.3f}" for s in shares)
        + f"\n{verdict(r)}"
        + (f"\n({filled}: {', '.join(map(str, got))})" if filled else "")
    )
    return View(figure=fig, text=text, data={"result": r}, png=canvas.png(picture))


def probe_explorer() -> Explorer:
    """Case, lengths, batch and GA controls over :func:`render_probe` (one Trainer step each)."""
    style = {"description_width": "initial"}
    controls = {
        "case": W.Dropdown(options=list(_CASE_TEXT), value="ga", description="case"),
        "lengths": W.Text(value="3,7,20,5", description="lengths", continuous_update=False),
        "batch": W.IntSlider(1, 1, 4, description="batch", continuous_update=False, style=style),
        "ga": W.IntSlider(4, 1, 4, description="GA", continuous_update=False, style=style),
    }
    return Explorer(functools.partial(render_probe, canvas=Canvas()), controls, height="360px")
