import numpy as np
import pytest
from matplotlib.figure import Figure

from lossviz.experiments.rl_results import load_rl_results, paired_rl
from lossviz.experiments.rl_training import METRICS
from lossviz.plots.rl_experiment import (
    METRIC_LABELS,
    RL_ARM_COLORS,
    paired_differences_figure,
    rl_curves,
    rl_figure,
)


@pytest.fixture(scope="module")
def results():
    return load_rl_results()


def _smoothed(values, window):
    """Trailing moving average by hand, NaN-aware."""
    out = []
    for k in range(len(values)):
        seen = [v for v in values[max(0, k - window + 1) : k + 1] if not np.isnan(v)]
        out.append(np.mean(seen) if seen else np.nan)
    return np.array(out)


def test_every_arm_on_one_axis_with_a_seed_band(results):
    fig = rl_curves(results, "len_incorrect", arms=["grpo", "dr_grpo"], seeds=[0, 1, 2])
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # a line and a band per arm
    assert [line.get_color() for line in ax.lines] == [
        RL_ARM_COLORS["grpo"],
        RL_ARM_COLORS["dr_grpo"],
    ]
    assert set(METRIC_LABELS) == set(METRICS)
    # readable without the text below: a title, labelled axes, a key for arms and the band
    assert METRIC_LABELS["len_incorrect"] in ax.get_title() and "range" in ax.get_title()
    assert ax.get_ylabel() == METRIC_LABELS["len_incorrect"] and ax.get_xlabel() == "RL step"
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[-1] == "range of 3 seeds"
    assert texts[0] == results["arms"]["grpo"]["label"].replace(": ", ":\n")


def test_line_is_the_mean_of_the_smoothed_seeds_and_the_band_their_range(results):
    fig = rl_curves(results, "reward", arms=["dapo"], window=10)
    seeds = results["config"]["seeds"]
    runs = {r["seed"]: r for r in results["runs"] if r["arm"] == "dapo"}
    smooth = np.array([_smoothed(np.array(runs[s]["curves"]["reward"], float), 10) for s in seeds])
    (ax,) = fig.axes
    assert np.allclose(ax.lines[0].get_ydata(), smooth.mean(axis=0))
    (band,) = ax.collections
    verts = band.get_paths()[0].vertices
    k = len(smooth[0])
    assert np.allclose(verts[:k, 1], smooth.max(axis=0)) and np.isclose(
        verts[k, 1], smooth.min(axis=0)[-1]
    )


def test_missing_values_are_gaps_not_zeros():
    fake = {
        "config": {"arms": ["grpo"], "seeds": [0, 1]},
        "arms": {"grpo": {"label": "GRPO"}},
        "runs": [
            {"arm": "grpo", "seed": 0, "curves": {"len_incorrect": [None, 4.0, None, None]}},
            {"arm": "grpo", "seed": 1, "curves": {"len_incorrect": [6.0, 2.0, None, None]}},
        ],
    }
    mean = rl_curves(fake, window=1).axes[0].lines[0].get_ydata()
    assert mean[0] == 6.0 and mean[1] == 3.0 and np.isnan(mean[2])
    smooth = rl_curves(fake, window=2).axes[0].lines[0].get_ydata()
    assert smooth[2] == 3.0 and np.isnan(smooth[3])  # the average of what the window holds


def test_paired_differences_are_dots_around_zero(results):
    diffs = {
        a: paired_rl(results, a, "grpo", "excess_incorrect")["differences"]
        for a in ("dapo", "dr_grpo")
    }
    fig = paired_differences_figure(diffs, metric="excess_incorrect", baseline="grpo")
    (ax,) = fig.axes
    dots = ax.collections
    assert [len(d.get_offsets()) for d in dots] == [6, 6]
    assert np.allclose(sorted(dots[0].get_offsets()[:, 0]), sorted(diffs["dapo"].values()))
    assert ax.get_xlim()[0] < 0 < ax.get_xlim()[1]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dapo - grpo", "dr_grpo - grpo"]
    with pytest.raises(ValueError, match="empty"):
        paired_differences_figure({}, metric="reward", baseline="grpo")


def test_readme_figure_and_bad_arguments(results):
    fig = rl_figure(results)
    assert len(fig.axes) == 3 and all(len(ax.lines) == len(results["arms"]) for ax in fig.axes)
    with pytest.raises(ValueError, match="not in these results"):
        rl_curves(results, arms=["ppo"])
    with pytest.raises(ValueError, match="seeds"):
        rl_curves(results, seeds=[99])
    with pytest.raises(ValueError, match="metric"):
        rl_curves(results, "accuracy")
