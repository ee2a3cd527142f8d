"""The RL experiment explorer, driven without a kernel."""

import functools
import io
import logging
import random
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from lossviz.experiments.rl_results import late_values, load_rl_results
from lossviz.widgets.base import Canvas, EdgeCase, figure_png
from lossviz.widgets.rl_experiment import render_rl_experiment, rl_experiment_explorer


@pytest.fixture(scope="module")
def results():
    return load_rl_results()


def test_explorer_redraws_for_each_choice(results):
    ex = rl_experiment_explorer(results)
    assert len(ex.last_view.figure.axes) == 1 and "grpo" in ex.last_view.text  # arms share one axis
    ex.controls["metric"].value = "excess_incorrect"
    late = late_values(results, "grpo", "excess_incorrect")
    assert ex.last_view.data["late"]["grpo"] == pytest.approx([late[s] for s in sorted(late)])
    ex.controls["seeds"].value = (1,)
    assert len(ex.last_view.data["late"]["grpo"]) == 1
    ex.controls["arms"].value = ()
    assert ex.last_view.text.startswith("Nothing to draw here") and "arm" in ex.last_view.text
    ex.controls["arms"].value = ("dapo",)
    ex.controls["seeds"].value = ()
    assert "seed" in ex.last_view.text and ex.last_view.figure is None


def test_render_edge_cases(results):
    with pytest.raises(EdgeCase):
        render_rl_experiment(results, [], [0], "reward")
    view = render_rl_experiment(results, ["dr_grpo"], [0, 2], "hit_limit")
    assert view.text.count("\n") == 1 and "nan" not in view.text.lower()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_the_blitted_picture_is_the_pure_picture(results):
    """The explorer's canvas keeps one picture per choice of arms and seeds and redraws only the
    curves and y axes; after any sequence of choices it shows what a fresh draw shows."""
    ex = rl_experiment_explorer(results)
    canvas = ex.render.keywords["canvas"]
    assert isinstance(canvas, Canvas)  # the explorer owns its canvas
    steps = [
        ("metric", "reward"),  # another y range: ticks, grid and label move on both panels
        ("seeds", (0, 2)),  # a new picture (fewer thin lines)
        ("metric", "hit_limit"),
        ("seeds", tuple(results["config"]["seeds"])),  # back to a kept picture...
        ("metric", "len_incorrect"),  # ...and to the metric it was first drawn with
        ("arms", ("dapo", "grpo", "dr_grpo")),
        ("metric", "excess_incorrect"),
    ]
    for name, value in steps:
        ex.controls[name].value = value
        shown = ex.last_view
        assert shown.png is not None, shown.text
        render = functools.partial(render_rl_experiment, results)  # no canvas: pure
        fresh = render(**ex.values(), canvas=Canvas(dpi=ex.dpi))
        assert shown.png == fresh.png, f"{name}={value!r}: the cached picture is stale"
        fast = _pixels(shown.png)
        full = _pixels(figure_png(render(**ex.values()).figure, dpi=ex.dpi))
        assert fast.shape == full.shape
        # blitting draws the y axes before the curves and the spines before both: where a curve
        # crosses a spine or a tick, one of the two is on top; well under 1 % of the pixels
        differ = (np.abs(fast - full) > 8).any(axis=-1)
        assert differ.mean() < 0.01, f"{name}={value!r}: {differ.sum()} pixels differ"
    assert len(canvas._pictures) == 3  # one per choice of arms and seeds, not per metric


def test_two_explorers_share_no_figure(results):
    a, b = rl_experiment_explorer(results), rl_experiment_explorer(results)
    assert a.last_view.figure is not b.last_view.figure


def test_random_choices_show_a_picture_or_an_explanation(results, caplog):
    """Seeded random arms, seeds (empty included) and metrics: a picture or an explanation,
    never a traceback, a NaN or a warning."""
    rng = random.Random("sweep-rl-experiment")  # the same choices on every run
    ex = rl_experiment_explorer(results)
    arms, seeds = list(results["config"]["arms"]), list(results["config"]["seeds"])
    seen = {"figure": 0, "explained": 0}
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")  # a warning (matplotlib's, numpy's) fails the test
        for _ in range(40):
            key = rng.choice(["arms", "seeds", "metric", "metric"])
            if key == "metric":
                value = rng.choice([name for _, name in ex.controls["metric"].options])
            else:
                pool = arms if key == "arms" else seeds
                value = tuple(sorted(rng.sample(pool, rng.randint(0, len(pool)))))
            if value == ex.controls[key].value:
                continue
            ex.controls[key].value = value
            view, setting = ex.last_view, f"{key}={value!r} with {ex.values()}"
            assert not re.search(r"Traceback|Something went wrong|not valid", view.text), setting
            assert not re.search(r"\bnan\b|\binf\b", view.text, re.IGNORECASE), setting
            has_image = any("image/png" in o.get("data", {}) for o in ex.out.outputs)
            if view.text.startswith("Nothing to draw here"):
                seen["explained"] += 1
                assert not has_image and not (ex.values()["arms"] and ex.values()["seeds"])
            else:
                seen["figure"] += 1
                assert has_image and len(view.data["late"]) == len(ex.values()["arms"]), setting
    assert caplog.records == [], [r.getMessage() for r in caplog.records]
    assert seen["figure"] > 0 and seen["explained"] > 0
