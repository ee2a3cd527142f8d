"""Explorer: run the real transformers Trainer for one step and see the weights the probe measures.

``render_probe`` is pure apart from a cache of finished runs (each is one real ``Trainer`` step
in this process, about a second); ``probe_explorer()`` wires it to a case, lengths, batch and GA.
"""

from __future__ import annotations

import functools

import ipywidgets as W

from .base import EdgeCase, Explorer, View

__all__ = ["render_probe", "probe_explorer"]

_CASE_TEXT = {
    "ga": "a transformers model (num_items_in_batch)",
    "naive": "a model whose forward takes no **kwargs",
    "compute_loss": "a compute_loss that returns model(**inputs).loss",
    "packed": "DataCollatorWithFlattening (packed, position_ids)",
}


@functools.lru_cache(maxsize=32)
def _measure(case: str, lengths: tuple[int, ...], batch: int, ga: int) -> dict:
    from ..trainer_probe import measure

    return measure(list(lengths), per_device_batch_size=batch, ga_steps=ga, case=case)


def _parse(lengths: str) -> list[int]:
    from ..checks import parse_list

    try:  # the shared parser of typed text; a Trainer run costs ~1 s, so at most 400 tokens
        return parse_list(lengths, "length", low=1, high=400, example="3, 7, 20, 5")
    except ValueError as err:
        raise EdgeCase(str(err)) from None


def render_probe(case: str = "ga", lengths: str = "3,7,20,5", batch: int = 2, ga: int = 2) -> View:
    """Measured vs predicted (lossviz's model of 5.24 for ``case``) W of one real Trainer step."""
    from ..plots.probe import measured_vs_predicted
    from ..trainer_models import verdict

    if case not in _CASE_TEXT:
        raise EdgeCase(f"choose a case among {list(_CASE_TEXT)}")
    got = _parse(lengths)
    need = batch * ga
    if len(got) != need:
        raise EdgeCase(
            f"batch {batch} x GA {ga} takes {need} samples per step; lengths gives {len(got)}"
        )
    r = _measure(case, tuple(got), batch, ga)
    intended = r["predicted"]["global"]
    fig = measured_vs_predicted(
        r["measured"],
        intended,
        titles=(f"measured: {case}", "intended: global token mean"),
    )
    shares = r["diff"]["global"]["measured_share"]
    text = (
        f"{_CASE_TEXT[case]}; sample shares measured "
        + ", ".join(f"{s:.3f}" for s in shares)
        + f"\n{verdict(r)}"
    )
    return View(figure=fig, text=text, data={"result": r})


def probe_explorer() -> Explorer:
    """Case, lengths, batch and GA controls over :func:`render_probe` (one Trainer step each)."""
    style = {"description_width": "initial"}
    controls = {
        "case": W.Dropdown(options=list(_CASE_TEXT), value="ga", description="case"),
        "lengths": W.Text(value="3,7,20,5", description="lengths", continuous_update=False),
        "batch": W.IntSlider(1, 1, 4, description="batch", continuous_update=False, style=style),
        "ga": W.IntSlider(4, 1, 4, description="GA", continuous_update=False, style=style),
    }
    return Explorer(render_probe, controls, height="360px")
