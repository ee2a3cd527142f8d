"""Pictures of a measured trainer step: measured vs predicted heatmaps and the version table."""

import numpy as np
from matplotlib.figure import Figure

from lossviz.plots.probe import (
    MODEL_COLORS,
    measured_vs_predicted,
    ragged_matrix,
    version_table_figure,
)


def test_ragged_rows_are_padded_and_marked():
    W, pad = ragged_matrix([[0.5], [0.25, 0.25]])
    assert W.tolist() == [[0.5, 0.0], [0.25, 0.25]]
    assert pad.tolist() == [[False, True], [False, False]]


def test_measured_vs_predicted_draws_both_on_one_scale_and_the_totals():
    fig = measured_vs_predicted([[0.1] * 3, [0.1] * 7], [[0.25] * 3, [1 / 14] * 7])
    assert isinstance(fig, Figure)
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 2
    assert {im.get_clim() for ax in heat for im in ax.images} == {(0.0, 0.25)}
    bars = fig.axes[2].collections  # measured, then predicted: one bar per sample each
    heights = [[round(p.vertices[:, 1].max(), 6) for p in c.get_paths()] for c in bars]
    assert heights == [[0.3, 0.7], [0.75, 0.5]]
    # readable alone: labelled axes (the right heatmap beside the left one, on the same rows),
    # a key for the bars and a label on the colour bar
    left, right, bars_ax = fig.axes[:3]
    assert left.get_ylabel() == "sample" and right.get_ylim() == left.get_ylim()
    assert all(ax.get_xlabel() for ax in (left, right, bars_ax)) and bars_ax.get_ylabel()
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == ["measured", "predicted"]
    assert fig.axes[3].get_ylabel() == "weight of the token"  # the colour bar


def test_version_table_colours_each_cell_by_its_model_and_says_why_a_row_failed():
    cell = {"model": "global", "average_tokens_across_devices": True}
    table = {
        "rows": [
            {
                "version": "9.0",
                "status": "measured",
                "ga": cell,
                "compute_loss": cell,
                "ranks": cell,
            },
            {"version": "1.0", "status": "failed", "reason": "ImportError"},
        ]
    }
    fig = version_table_figure(table)
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    models = list(MODEL_COLORS)
    assert np.asarray(grid)[0].tolist() == [models.index("global")] * 3
    assert np.asarray(grid)[1].tolist() == [models.index(None)] * 3
    texts = [t.get_text() for t in ax.texts]
    assert "failed" in texts and "global token mean" in texts
    assert [t.get_text() for t in ax.get_yticklabels()] == ["transformers 9.0", "transformers 1.0"]


def test_samples_of_very_different_lengths_are_each_stretched_to_full_width():
    # a 300-token sample beside 2- to 9-token ones: each row fills the panel, none is a sliver
    lengths = [300, 2, 9, 5]
    N = sum(lengths)
    fig = measured_vs_predicted(
        [[1 / (4 * n)] * n for n in lengths], [[1 / N] * n for n in lengths]
    )
    left = fig.axes[0]
    data = left.images[0].get_array()
    assert not np.ma.getmaskarray(data).any()  # every row is painted over the whole width
    # row 1 (2 tokens): the first half of its columns is token 0, the second token 1
    assert np.allclose(data[1].filled(), 1 / 8)
    assert "stretched" in left.get_xlabel()
    assert [t.get_text() for t in left.get_xticklabels()] == ["start", "middle", "end"]
    # close lengths keep one column per token
    fig = measured_vs_predicted([[0.1] * 3, [0.1] * 7], [[0.25] * 3, [1 / 14] * 7])
    assert fig.axes[0].get_xlabel() == "trained token of the sample"
    assert fig.axes[0].images[0].get_array().shape == (2, 7)


def test_the_version_table_has_a_colour_key_of_the_models_shown():
    cell = {"model": "global", "average_tokens_across_devices": True}
    naive = {"model": "naive", "average_tokens_across_devices": None}
    table = {
        "rows": [
            {
                "version": "9.0",
                "status": "measured",
                "ga": cell,
                "compute_loss": naive,
                "ranks": cell,
            }
        ]
    }
    fig = version_table_figure(table)
    key = [t.get_text() for t in fig.legends[0].get_texts()]
    assert key == ["global token mean (every trained token 1/N)", "mean of micro-batch means"]
    assert min(t.get_fontsize() for t in fig.axes[0].texts) >= 10
