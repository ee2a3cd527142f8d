"""Property test over every explorer: seeded random control settings, edge values included.

Whatever a learner types or drags, an explorer shows a picture or its own explanation: never a
traceback, a raw Python error, a NaN or an inf (except the precision explorer, whose lesson is the
float16 overflow to inf), never a warning on stderr, and every update stays under one second.
"""

import logging
import random
import re
import time
import warnings

import ipywidgets as W
import pytest

from lossviz.widgets.accumulation import accumulation_explorer
from lossviz.widgets.chat import chat_explorer
from lossviz.widgets.precision import precision_explorer
from lossviz.widgets.reductions import reduction_explorer
from lossviz.widgets.rl import rl_explorer

# typed into any text box: empty, zero, negative, non-digits, huge, tiny, unicode digits
EDGE_TEXT = [
    "",
    " , ",
    "0",
    "-3",
    "abc",
    "12,,3",
    "1e300",
    "1e-8",
    "1e-320",
    "99999999999999999999",
    "nan",
    "inf",
    "²",
    "³,4",
    "٣",
    "4٣",
    "3.5",
]
VALID_TEXT = ["3", "12, 40, 7, 300", "2, 8, 4", "1, -1, 1, -1", "20, 200", "5", "1"]
EXPLORERS = {
    "reductions": reduction_explorer,
    "accumulation": accumulation_explorer,
    "chat": chat_explorer,
    "precision": precision_explorer,
    "rl": rl_explorer,
}
UPDATES = 40  # per explorer: 200 updates, a few seconds in all
RAW_ERROR = re.compile(
    r"Traceback|invalid literal|object has no attribute|not supported between|Something went wrong"
    r"|This setting is not valid|Error\b"
)
NOT_FINITE = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def _values(control: W.ValueWidget) -> list:
    if isinstance(control, W.Text):
        return EDGE_TEXT + 2 * VALID_TEXT  # valid text often enough to reach a picture
    if hasattr(control, "options"):
        return [o[1] if isinstance(o, tuple) else o for o in control.options]
    if isinstance(control, W.Checkbox):
        return [True, False]
    lo, hi = control.min, control.max
    if isinstance(control, W.FloatLogSlider):
        lo, hi = control.base**lo, control.base**hi
    kind = type(control.value)
    return [kind(lo), kind(hi), kind((lo + hi) / 2), kind(lo + (hi - lo) / 7)]


@pytest.mark.parametrize("name", list(EXPLORERS))
def test_random_control_settings_never_break_an_explorer(name, caplog):
    rng = random.Random(f"sweep-{name}")  # seeded: the same settings on every run
    explorer = EXPLORERS[name]()
    controls = {k: c for k, c in explorer.controls.items() if not getattr(c, "disabled", False)}
    assert explorer.last_view.figure is not None  # the default setting draws
    seen = {"figure": 0, "explained": 0}
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")  # a warning (matplotlib's included) fails the test
        for _ in range(UPDATES):
            key = rng.choice(list(controls))
            value = rng.choice(_values(controls[key]))
            if value == controls[key].value:
                continue
            start = time.process_time()
            controls[key].value = value
            seconds = time.process_time() - start
            view = explorer.last_view
            setting = f"{name}: {key}={value!r} with {explorer.values()}"
            assert not RAW_ERROR.search(view.text), f"{setting} showed {view.text!r}"
            typed = [repr(v) for v in explorer.values().values() if isinstance(v, str)]
            shown = view.text
            for echo in typed:  # an explanation may quote what the learner typed ('nan')
                shown = shown.replace(echo, "")
            if name != "precision":  # its lesson is the overflow to inf
                assert not NOT_FINITE.search(shown), f"{setting} showed {view.text!r}"
            kinds = [o.get("output_type") for o in explorer.out.outputs]
            has_image = any("image/png" in o.get("data", {}) for o in explorer.out.outputs)
            if view.text.startswith("Nothing to draw here"):
                seen["explained"] += 1
                assert not has_image
            else:
                seen["figure"] += 1
                assert has_image, f"{setting} drew no figure ({kinds})"
            # CPU time of this process, so a busy machine does not fail it; typical: 20-150 ms
            assert seconds < 1.0, f"{setting} took {seconds:.2f} s"
    assert caplog.records == [], [r.getMessage() for r in caplog.records]
    assert seen["figure"] > 0
    if any(isinstance(c, W.Text) for c in controls.values()):
        assert seen["explained"] > 0  # the edge values were reached
