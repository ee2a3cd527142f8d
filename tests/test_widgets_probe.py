"""The probe explorer (one real Trainer step per setting), driven without a kernel."""

import io
import logging
import random
import re
import time
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("transformers")  # the trainers extra; `make test` installs it

from lossviz.widgets.base import Canvas, EdgeCase, figure_png  # noqa: E402
from lossviz.widgets.probe import probe_explorer, render_probe  # noqa: E402

RAW_ERROR = re.compile(
    r"Traceback|invalid literal|object has no attribute|Something went wrong"
    r"|This setting is not valid|Error\b"
)
NOT_FINITE = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def test_settings_without_a_picture_explain_themselves():
    with pytest.raises(EdgeCase, match="positive integers"):
        render_probe(lengths="3,x")
    with pytest.raises(EdgeCase, match="between 1 and 400"):
        render_probe(lengths="0,3", batch=1, ga=2)


def test_the_explorer_measures_the_real_trainer_and_re_renders():
    ex = probe_explorer()  # batch 1, GA 4 on 3, 7, 20, 5: the global token mean
    r = ex.last_view.data["result"]  # the first picture is a measured one
    assert "global" in r["matches"] and "matches lossviz's `global` model" in ex.last_view.text
    ex.controls["case"].value = "naive"  # now each micro-batch (one sample) gets 1/4
    # painted at once, and honest: the Trainer step runs in the background, nothing measured
    placeholder = ex.last_view
    assert placeholder.data == {"measuring": True} and placeholder.png is not None
    assert "Trainer step for this setting is running" in placeholder.text
    picture = ex.canvas.picture("probe", None)
    assert picture.notice.get_visible() and "nothing measured yet" in picture.notice.get_text()
    assert ex.wait() and not picture.notice.get_visible()
    r = ex.last_view.data["result"]
    assert r["diff"]["naive"]["max_rel_diff"] < 1e-6  # float32 recovery, ~6e-8
    assert "0.250, 0.250, 0.250, 0.250" in ex.last_view.text
    assert ex.out.outputs[0]["output_type"] == "display_data"
    ex.controls["ga"].value = 3  # 4 lengths for 3 samples: cut to the step, and said so
    assert ex.wait()
    assert "the 4 lengths cut to the step's 3 samples: 3, 7, 20" in ex.last_view.text
    assert len(ex.last_view.data["result"]["measured"]) == 3


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_the_blitted_picture_is_the_pure_picture_and_runs_are_remembered():
    """The explorer keeps its runs and one picture for every setting, and redraws only the cells
    and bars while the axes hold; after any sequence of changes it shows what a fresh draw shows."""
    ex = probe_explorer(background=False)  # each setting measured before it is painted
    canvas = ex.canvas
    assert isinstance(canvas, Canvas)  # the explorer owns its canvas
    steps = [
        ("batch", 2),  # 8 samples: new axis ranges, the static part is redrawn
        ("case", "naive"),  # same shape, another colour scale and title
        ("lengths", "4, 9, 2, 6"),
        ("batch", 1),  # back to 4 samples
        ("case", "ga"),
    ]
    for name, value in steps:
        ex.controls[name].value = value
        shown = ex.last_view
        assert shown.png is not None, shown.text
        r = shown.data["result"]
        fresh = render_probe(**ex.values(), canvas=Canvas(dpi=ex.dpi))  # its own Trainer step
        assert fresh.data["result"]["measured"] == r["measured"]  # the same step, measured again
        assert shown.png == fresh.png, f"{name}={value!r}: the cached picture is stale"
        fast = _pixels(shown.png)
        full = _pixels(figure_png(fresh.figure, dpi=ex.dpi))  # savefig: every artist drawn
        assert fast.shape == full.shape
        # an image drawn alone is resampled, not composited: cell edges may move by a pixel
        differ = (np.abs(fast - full) > 8).any(axis=-1)
        assert differ.mean() < 0.01, f"{name}={value!r}: {differ.sum()} pixels differ"
    assert len(canvas._pictures) == 1  # one picture serves every batch x GA
    assert len(ex._runs) == 6  # each of the 6 distinct settings measured once
    ex.controls["lengths"].value = "3,7,20,5"  # the first setting again: no new Trainer step
    assert len(ex._runs) == 6 and "global" in ex.last_view.data["result"]["matches"]


def test_a_step_overtaken_by_a_newer_setting_is_not_painted():
    ex = probe_explorer()
    ex.controls["batch"].value = 2  # its step starts in the background...
    ex.controls["ga"].value = 3  # ...and the learner moves on before it ends
    assert ex.wait()
    r = ex.last_view.data["result"]
    assert len(r["measured"]) == 6 and r["ga_steps"] == 3 and r["per_device_batch_size"] == 2
    ex.controls["ga"].value = 2  # a third setting, then back to the second
    assert ex.wait()
    ex.controls["ga"].value = 3  # remembered: drawn at once from its run, no placeholder
    assert len(ex.last_view.data["result"]["measured"]) == 6


# typed into the lengths box: empty, zero, negative, non-digits, too long, unicode digits
EDGE_LENGTHS = ["", " , ", "0", "-3", "abc", "12,,3", "1e300", "401", "²", "٣", "3.5"]
VALID_LENGTHS = ["3", "5, 9", "3,7,20,5", "1, 400"]


def test_random_settings_show_a_picture_or_an_explanation(caplog):
    """Seeded random settings, edge text included: a picture or an explanation, never a
    traceback, a raw error, a NaN or a warning."""
    rng = random.Random("sweep-probe")  # the same settings on every run
    ex = probe_explorer()
    values = {
        "case": list(ex.controls["case"].options),
        "lengths": EDGE_LENGTHS + 2 * VALID_LENGTHS,
        "batch": [1, 2, 3, 4],
        "ga": [1, 2, 3, 4],
    }
    seen = {"figure": 0, "explained": 0}
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")  # a warning (matplotlib's, transformers') fails the test
        for _ in range(30):
            key = rng.choice(list(values))
            value = rng.choice(values[key])
            if value == ex.controls[key].value:
                continue
            start = time.process_time()
            ex.controls[key].value = value
            assert ex.wait()  # the setting's Trainer step, in the background
            seconds = time.process_time() - start
            text = ex.last_view.text
            setting = f"{key}={value!r} with {ex.values()}"
            assert not RAW_ERROR.search(text), f"{setting} showed {text!r}"
            typed = repr(ex.values()["lengths"])  # an explanation may quote what was typed
            assert not NOT_FINITE.search(text.replace(typed, "")), f"{setting} showed {text!r}"
            has_image = any("image/png" in o.get("data", {}) for o in ex.out.outputs)
            if text.startswith("Nothing to draw here"):
                seen["explained"] += 1
                assert not has_image, setting
            else:
                seen["figure"] += 1
                assert has_image and "transformers " in text, setting  # the verdict is shown
            # CPU time of this process: one real Trainer step and a draw, typically 20-150 ms;
            # a busy machine's thread pool can spin several hundred ms more
            assert seconds < 3.0, f"{setting} took {seconds:.2f} s"
    assert caplog.records == [], [r.getMessage() for r in caplog.records]
    assert seen["figure"] > 0 and seen["explained"] > 0
