"""Each explorer's Canvas shows the picture its pure render draws, after any sequence of changes.

The explorers keep their figure and redraw only what moved (blitting onto cached static pixels);
this checks, pixel by pixel, that what a learner sees is the fresh picture of the same settings.
"""

import functools
import io

import numpy as np
import pytest
from PIL import Image

from lossviz.widgets.accumulation import accumulation_explorer
from lossviz.widgets.base import Canvas, figure_png
from lossviz.widgets.chat import chat_explorer
from lossviz.widgets.precision import precision_explorer
from lossviz.widgets.preference import preference_explorer
from lossviz.widgets.reductions import reduction_explorer
from lossviz.widgets.rl import rl_explorer

pitfall_explorer = pytest.importorskip(
    "lossviz.widgets.pitfalls"
).pitfall_explorer  # trainers extra

STEPS = {
    reduction_explorer: [
        ("length_1", 20),  # a wider batch: the x axis moves
        ("num_samples", 5),
        ("reduction", "sum"),  # a new title and colour scale: the static part is redrawn
        ("padding", "packed"),
        ("num_samples", 2),
        ("reduction", "token_mean"),  # back to a cached background
    ],
    accumulation_explorer: [
        ("ga_steps", 2),
        ("world_size", 2),
        ("lengths", "3, 3, 3, 30"),
        ("per_device_batch_size", 3),
        ("ga_steps", 4),
    ],
    chat_explorer: [
        ("turns", 4),
        ("prompt_weight", 0.3),
        ("layout", "split"),
        ("reduction", "sum"),
        ("turns", 1),
    ],
    precision_explorer: [("num_tokens", 100), ("dtype", "bfloat16"), ("num_tokens", 1e6)],
    rl_explorer: [
        ("mode", "trl:dr_grpo"),
        ("lengths", "5, 50, 7, 9"),
        ("advantages", "1, -1, 0, 2"),
        ("mode", "trl:grpo"),
    ],
    preference_explorer: [("beta", 0.5), ("chosen_shift", 0.3), ("loss", "ipo"), ("beta", 0.1)],
    pitfall_explorer: [
        ("setup", "compute_loss returns model(**inputs).loss"),  # total weight GA: a new scale
        ("ga", 4),  # 8 samples: the axes move
        ("lengths", "30, 2, 9"),
        ("world", 4),  # 32 samples: a taller picture of its own
        ("setup", "transformers 5.24 defaults"),
    ],
}


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


@pytest.mark.parametrize("make", list(STEPS), ids=[m.__name__ for m in STEPS])
def test_the_blitted_picture_is_the_pure_picture(make):
    ex = make()
    assert isinstance(ex.render.keywords["canvas"], Canvas)  # each explorer owns its canvas
    for name, value in STEPS[make]:
        ex.controls[name].value = value
        shown = ex.last_view
        assert shown.png is not None, shown.text
        # a new canvas draws these settings from nothing: the cached pixels are never stale
        render = functools.partial(ex.render.func, *ex.render.args)  # the explorer's, no canvas
        fresh = render(**ex.values(), canvas=Canvas(dpi=ex.dpi))
        assert shown.png == fresh.png, f"{name}={value!r}: the cached picture is stale"
        # and it is the figure savefig draws: only a few of the image cells' edges may land one
        # pixel apart (an image drawn alone is resampled, not composited). A stale or lost
        # layer (a tick label, a title in another place) changes hundreds of pixels
        fast = _pixels(shown.png)
        full = _pixels(figure_png(render(**ex.values()).figure, dpi=ex.dpi))
        assert fast.shape == full.shape, name
        differ = (np.abs(fast - full) > 8).any(axis=-1)
        assert differ.sum() <= 40, f"{name}={value!r}: {differ.sum()} pixels differ"


def test_two_explorers_share_no_figure():
    for make in STEPS:
        a, b = make(), make()
        assert a.last_view.figure is not b.last_view.figure


def test_memo_computes_once_per_canvas_and_keeps_canvases_apart():
    calls = []

    def square(x):
        calls.append(x)
        return [x * x]

    a, b = Canvas(maxsize=1), Canvas(maxsize=1)
    assert a.memo(square, 3) == [9] and a.memo(square, 3) == [9]
    assert calls == [3]  # the second call was remembered
    a.memo(square, 3).append("changed")  # a caller that mutates a result...
    assert b.memo(square, 3) == [9]  # ...cannot reach another explorer's
    for x in range(20):  # bounded: 16 * maxsize results, the oldest dropped first
        a.memo(square, x)
    assert len(a._results) == 16
    calls.clear()
    a.memo(square, 0)
    assert calls == [0]
