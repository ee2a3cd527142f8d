import pytest
from matplotlib.figure import Figure

from lossviz.experiments.sft_results import load_results
from lossviz.plots.experiment import (
    experiment_figure,
    heldout_curves,
    metric_by_length,
    paired_differences_figure,
    training_curves,
)


@pytest.fixture(scope="module")
def results():
    return load_results()


def test_every_plot_returns_a_figure(results):
    n_buckets = len(results["buckets"])
    fig = metric_by_length(results, "accuracy")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].get_xticklabels()) == n_buckets
    assert len(fig.axes[0].patches) == n_buckets * len(results["arms"])
    assert len(metric_by_length(results, "loss", arms=["token_mean"]).axes[0].patches) == n_buckets
    two = training_curves(results, ["token_mean", "sum"])
    assert [len(ax.lines) for ax in two.axes] == [1, 2]  # sum's panel also shows token_mean dashed
    every = training_curves(results)
    visible = [ax for ax in every.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(results["arms"])  # one panel per arm
    legend = [t.get_text().split(":")[0] for t in every.legends[0].get_texts()]
    assert legend == list(results["arms"])  # every arm in the legend, with its label
    assert len(heldout_curves(results).axes) == n_buckets
    assert "seeds" in experiment_figure(results).axes[0].get_title()


def test_bar_heights_are_seed_means(results):
    fig = metric_by_length(results, "accuracy", arms=["sample_mean"])
    runs = [r for r in results["runs"] if r["arm"] == "sample_mean"]
    long_mean = sum(r["final"]["long"]["accuracy"] for r in runs) / len(runs)
    assert fig.axes[0].patches[-1].get_height() == pytest.approx(long_mean)


def test_bad_arguments(results):
    with pytest.raises(ValueError, match="not in these results"):
        training_curves(results, ["median"])
    with pytest.raises(ValueError, match="metric"):
        metric_by_length(results, "f1")


def test_paired_differences_are_dots_around_zero():
    diffs = {"sample_mean": {0: -0.25, 1: 0.125, 2: -0.5}, "sum": {0: -0.75, 1: -0.5, 2: -1.0}}
    fig = paired_differences_figure(diffs, reference="token_mean")
    ax = fig.axes[0]
    zero, dots, mean = ax.lines[:3]
    assert list(zero.get_ydata()) == [0.0, 0.0]  # the line every dot is read against
    assert list(dots.get_ydata()) == [-0.25, 0.125, -0.5] and dots.get_marker() == "o"
    assert mean.get_ydata()[0] == pytest.approx(-0.625 / 3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sample_mean", "sum"]
    assert [t.get_text() for t in ax.texts] == ["1 up / 2 down", "0 up / 3 down"]
    lo, hi = ax.get_ylim()
    assert lo < -1.0 and hi > 0.0  # every dot and the zero line in view
    with pytest.raises(ValueError, match="at least one"):
        paired_differences_figure({"sum": {}})
