import pytest
from matplotlib.figure import Figure

from lossviz.experiments.sft_results import load_results
from lossviz.plots.experiment import (
    experiment_figure,
    heldout_curves,
    metric_by_length,
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
