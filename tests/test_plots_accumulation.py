"""The accumulation plots: pure functions returning a Figure, and the reusable WeightBars."""

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from lossviz.plots.accumulation import (
    COLORS,
    MAX_LABELS,
    WeightBars,
    gradient_gap_bars,
    sample_weight_bars,
)
from lossviz.widgets.base import figure_png


def _bars(fig):
    """The bar collections of the figure, by colour (bands and lines excluded)."""
    ax = fig.axes[0]
    return [c for c in ax.collections if len(c.get_paths()) and c.get_zorder() >= 1]


def test_sample_weight_bars_draw_one_collection_per_column():
    fig = sample_weight_bars(
        [4, 3],
        {"full batch": [4 / 7, 3 / 7], "naive": [0.5, 0.5]},
        placement=[(0, 0), (0, 1)],
        gaps={"naive GA": 0.3},
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    bars = _bars(fig)
    assert len(bars) == 2 and all(len(p.get_paths()) == 2 for p in bars)
    tops = [sorted(p.vertices[:, 1].max() for p in b.get_paths()) for b in bars]
    assert np.allclose(tops[0], [3 / 7, 4 / 7]) and np.allclose(tops[1], [0.5, 0.5])
    assert np.allclose(bars[1].get_facecolor()[0][:3], [0xD9 / 255, 0x5F / 255, 0x02 / 255])
    ax = fig.axes[0]
    # readable without the text below: labelled axes with ticks, a legend of columns and bands
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0\n(4)", "1\n(3)"]
    assert ax.get_ylabel() == "weight in the step" and "tokens" in ax.get_xlabel()
    assert ax.get_ylim() == (0.0, 1.0) and len(ax.get_yticks()) >= 3  # 1.05 x 4/7 rounded up
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["full batch", "naive", "bands: GA steps"]
    assert any("naive GA: 3.0e-01" in t.get_text() for t in fig.texts)


def test_each_ga_step_gets_one_band():
    placement = [(r, k) for k in range(3) for r in range(2)]  # samples of step k on 2 ranks
    fig = sample_weight_bars([5] * 6, {"naive": [1 / 6] * 6}, placement=placement)
    bands = fig.axes[0].collections[0]
    assert len(bands.get_paths()) == 3


def test_shade_rank_bands_follow_the_ranks_not_the_steps():
    placement = [(i % 2, i // 4) for i in range(8)]  # notebook 05: rank i % 2, two GA steps
    fig = sample_weight_bars([5] * 8, {"naive": [1 / 8] * 8}, placement=placement, shade="rank")
    bands = fig.axes[0].collections[0]
    assert len(bands.get_paths()) == 8  # ranks alternate sample by sample
    faces = bands.get_facecolors()
    assert np.allclose(faces[0], faces[2]) and not np.allclose(faces[0], faces[1])
    assert any("bands: ranks (0 blue, 1 yellow)" in t.get_text() for t in fig.texts)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()][-2:] == ["rank 0", "rank 1"]
    steps = sample_weight_bars([5] * 8, {"naive": [1 / 8] * 8}, placement=placement)
    assert len(steps.axes[0].collections[0].get_paths()) == 2  # the default still shades steps
    with pytest.raises(ValueError, match="shade"):
        sample_weight_bars([5], {"naive": [1.0]}, placement=[(0, 0)], shade="ranks")


def test_many_samples_keep_few_labels():
    B = 32
    fig = sample_weight_bars(list(range(1, B + 1)), {"full batch": [1 / B] * B}, key=False)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert 1 < len(labels) <= MAX_LABELS and labels[0] == "0\n(1)"


def test_reused_figure_draws_the_same_picture_as_the_pure_function():
    cols_a = {n: [0.1, 0.2, 0.3, 0.4] for n in ("full batch", "naive", "global")}
    cols_b = {
        "full batch": [0.4, 0.3, 0.2, 0.1],
        "naive": [0.25] * 4,
        "global": [0.4, 0.3, 0.2, 0.1],
    }
    place = [(0, k) for k in range(4)]
    bars = WeightBars(list(COLORS)[:3])
    bars.update([1, 2], {n: v[:2] for n, v in cols_a.items()}, placement=place[:2])
    bars.update([1, 2, 3, 4], cols_a, placement=place)  # a first picture, then moved in place
    reused = figure_png(bars.update([4, 3, 2, 1], cols_b, placement=place))
    fresh = figure_png(sample_weight_bars([4, 3, 2, 1], cols_b, placement=place, key=False))
    assert reused == fresh


def test_gradient_gap_bars_handle_an_exact_zero():
    fig = gradient_gap_bars({"global GA": 0.0, "naive GA": 0.5})
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 2


def test_gradient_gap_bars_label_rounding_with_its_bound_not_its_digits():
    gaps = {"float32 full batch": 1.1e-7, "global GA": 9.8e-8, "naive GA": 0.36}
    fig = gradient_gap_bars(gaps, bounds={"float32 full batch": 1e-6, "global GA": 1e-6})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["float32 full batch\n< 1e-06", "global GA\n< 1e-06", "naive GA\n3.6e-01"]
    ends = [p.get_x() + p.get_width() for p in ax.patches]
    assert ends[0] == pytest.approx(-6) and ends[2] == pytest.approx(math.log10(0.36))
    assert ax.patches[0].get_hatch() and not ax.patches[2].get_hatch()
    with pytest.raises(ValueError, match="not in gaps"):
        gradient_gap_bars(gaps, bounds={"float64": 1e-12})
