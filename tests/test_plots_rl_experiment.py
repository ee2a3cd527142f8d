import numpy as np
import pytest
from matplotlib.figure import Figure

from lossviz.experiments.rl_results import load_rl_results
from lossviz.experiments.rl_training import METRICS
from lossviz.plots.rl_experiment import METRIC_LABELS, rl_curves, rl_figure


@pytest.fixture(scope="module")
def results():
    return load_rl_results()


def test_a_panel_per_arm_and_a_line_per_seed(results):
    fig = rl_curves(results, "len_incorrect", arms=["grpo", "dr_grpo"], seeds=[0, 1, 2])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert all(len(ax.lines) == 3 + 1 for ax in fig.axes)  # seeds + their mean
    assert set(METRIC_LABELS) == set(METRICS)
    # readable without the text below: a title, labelled axes, a key for thin and thick lines
    assert METRIC_LABELS["len_incorrect"] in fig.get_suptitle()
    assert fig.axes[0].get_ylabel() == METRIC_LABELS["len_incorrect"]
    assert all(ax.get_xlabel() == "RL step" for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["one seed", "mean of 3 seeds"]


def test_thick_line_is_the_mean_over_seeds(results):
    fig = rl_curves(results, "reward", arms=["dapo"])
    seeds = results["config"]["seeds"]
    runs = {r["seed"]: r for r in results["runs"] if r["arm"] == "dapo"}
    expected = np.mean([runs[s]["curves"]["reward"] for s in seeds], axis=0)
    assert np.allclose(fig.axes[0].lines[-1].get_ydata(), expected)


def test_missing_values_are_gaps_not_zeros():
    fake = {
        "config": {"arms": ["grpo"], "seeds": [0, 1]},
        "arms": {"grpo": {"label": "GRPO"}},
        "runs": [
            {"arm": "grpo", "seed": 0, "curves": {"len_incorrect": [None, 4.0, None]}},
            {"arm": "grpo", "seed": 1, "curves": {"len_incorrect": [6.0, 2.0, None]}},
        ],
    }
    mean = rl_curves(fake).axes[0].lines[-1].get_ydata()
    assert mean[0] == 6.0 and mean[1] == 3.0 and np.isnan(mean[2])


def test_readme_figure_and_bad_arguments(results):
    fig = rl_figure(results)
    assert len(fig.axes) == 3 * len(results["arms"])
    with pytest.raises(ValueError, match="not in these results"):
        rl_curves(results, arms=["ppo"])
    with pytest.raises(ValueError, match="seeds"):
        rl_curves(results, seeds=[99])
    with pytest.raises(ValueError, match="metric"):
        rl_curves(results, "accuracy")
