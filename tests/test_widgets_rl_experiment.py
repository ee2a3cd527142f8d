"""The RL experiment explorer, driven without a kernel."""

import pytest

from lossviz.experiments.rl_results import late_values, load_rl_results
from lossviz.widgets.base import EdgeCase
from lossviz.widgets.rl_experiment import render_rl_experiment, rl_experiment_explorer


@pytest.fixture(scope="module")
def results():
    return load_rl_results()


def test_explorer_redraws_for_each_choice(results):
    ex = rl_experiment_explorer(results)
    assert len(ex.last_view.figure.axes) == 2 and "grpo" in ex.last_view.text
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
