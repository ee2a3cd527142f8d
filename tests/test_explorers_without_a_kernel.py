"""Every explorer leaves a picture that a reader without a kernel sees (GitHub, nbviewer, an export).

An explorer's display bundle carries the live widget view and, beside it, ``image/png``: the picture
of its opening state. JupyterLab renders the widget view (the richer type), so a live lab shows the
explorer once; a static renderer shows the PNG.
"""

import base64
import json
from pathlib import Path

import ipywidgets as W
import pytest

from lossviz.widgets.accumulation import accumulation_explorer
from lossviz.widgets.base import Explorer, View
from lossviz.widgets.chat import chat_explorer
from lossviz.widgets.precision import precision_explorer
from lossviz.widgets.preference import preference_explorer
from lossviz.widgets.reductions import reduction_explorer
from lossviz.widgets.rl import rl_explorer

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# the explorers that need no cached run or real trainer step to open
EXPLORERS = {
    "reductions": lambda: reduction_explorer(num_samples=3, reduction="padded_mean"),
    "accumulation": lambda: accumulation_explorer("12, 40, 7, 300"),
    "chat": chat_explorer,
    "precision": lambda: precision_explorer(num_tokens=10_000, dtype="float16", reduction="sum"),
    "rl": rl_explorer,
    "preference": preference_explorer,
}


@pytest.mark.parametrize("name", list(EXPLORERS))
def test_the_display_bundle_carries_the_opening_picture(name):
    explorer = EXPLORERS[name]()
    data = explorer._repr_mimebundle_()
    data = data[0] if isinstance(data, tuple) else data
    assert WIDGET_VIEW in data, "the live widget is still the first choice"
    png = base64.b64decode(data["image/png"])
    assert png.startswith(PNG_MAGIC) and len(png) > 2_000
    assert png == explorer.static_png()
    assert explorer.last_view.figure is not None


def test_the_static_picture_stays_the_opening_one_after_a_control_moves():
    explorer = reduction_explorer(num_samples=3, reduction="token_mean")
    opening = explorer.static_png()
    explorer.controls["reduction"].value = "sample_mean"
    assert explorer.static_png() == opening
    assert explorer.out.outputs[0]["data"]["image/png"] != base64.b64encode(opening).decode()


def test_the_framework_picker_carries_its_opening_row_as_html():
    from lossviz.trainers.frameworks import load_table
    from lossviz.widgets.frameworks import framework_picker

    picker = framework_picker(load_table())
    data = picker._repr_mimebundle_()
    data = data[0] if isinstance(data, tuple) else data
    assert WIDGET_VIEW in data and data["text/html"] == picker.children[1].value
    assert "The one-line fix" in data["text/html"]


def test_an_explorer_that_opens_without_a_figure_offers_no_static_picture():
    explorer = Explorer(lambda x: View(text=f"x = {x}"), {"x": W.IntSlider(1, 0, 3)})
    data = explorer._repr_mimebundle_()
    data = data[0] if isinstance(data, tuple) else data
    assert explorer.static_png() is None and "image/png" not in data


STATIC = {"image/png", "text/html"}  # what GitHub and nbviewer draw in a widget's place


def stored_explorers_without_a_picture(nb: dict) -> list[int]:
    """Indices of code cells whose stored output shows a widget with no static picture beside it
    (``image/png``, or ``text/html`` for a picker whose opening state is a table)."""
    missing = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            data = out.get("data", {})
            if WIDGET_VIEW in data and not STATIC & set(data):
                missing.append(i)
    return missing


def test_the_checker_finds_a_widget_stored_without_its_picture():
    widget_only = {"data": {WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox()"}}
    both = {"data": {WIDGET_VIEW: {"model_id": "y"}, "image/png": "iVBOR"}}
    nb = {
        "cells": [
            {"cell_type": "code", "outputs": [both]},
            {"cell_type": "markdown", "source": "text"},
            {"cell_type": "code", "outputs": [widget_only]},
        ]
    }
    assert stored_explorers_without_a_picture(nb) == [2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_stored_explorer_has_its_picture(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    missing = stored_explorers_without_a_picture(nb)
    assert not missing, (
        f"{path.name}: cells {missing} store a widget with no picture for readers without a "
        "kernel; display an lossviz Explorer (it carries one) and re-execute the notebook"
    )
