"""The reduction pictures: padding is grey, weights are drawn as given, shares carry both lines."""

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.image import BboxImage
from matplotlib.patches import PathPatch

import lossviz as lv
from lossviz.plots.reductions import (
    PAD_COLOR,
    draw_sample_shares,
    draw_weights,
    reduction_figure,
    weights_figure,
)
from lossviz.widgets.base import figure_png


def _image(ax):
    (im,) = ax.get_images()
    return im


def test_padding_cells_are_grey_and_zero_weight_cells_are_not():
    mask, ids = lv.pack_lengths(
        [2, 3], 5
    )  # two rows; each piece starts with an unlabelled (weight 0) token
    w = lv.weights(mask, "token_mean", sample_ids=ids)
    fig = Figure()
    ax = fig.subplots()
    im = draw_weights(ax, w, (ids < 0).numpy())
    rgba = im.to_rgba(im.get_array())
    pad_cell, unlabelled_cell = rgba[1, 4], rgba[0, 0]
    assert np.allclose(pad_cell, to_rgba(PAD_COLOR))
    assert not np.allclose(unlabelled_cell, to_rgba(PAD_COLOR))
    assert np.ma.getmaskarray(im.get_array()).sum() == int((ids < 0).sum())


def test_heatmap_holds_the_weights_exactly():
    mask = lv.mask_from_lengths([1, 4])
    w = lv.weights(mask, "sample_mean")
    im = draw_weights(Figure().subplots(), w, (mask == 0).numpy())
    assert np.allclose(np.ma.filled(im.get_array(), 0.0), w.numpy())
    assert im.get_clim() == (0.0, pytest.approx(0.5))


@pytest.mark.parametrize("lengths", [[1], [5, 5, 5], [1, 24], [2, 7, 3, 1, 9, 24]])
def test_share_bars_and_reference_lines(lengths):
    mask = lv.mask_from_lengths(lengths)
    shares = lv.sample_weights(mask, "sample_mean").tolist()
    ax = Figure().subplots()
    draw_sample_shares(ax, shares, lengths)
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([1 / len(lengths)] * len(lengths))
    equal_line = ax.get_lines()[0]
    assert equal_line.get_ydata()[0] == pytest.approx(1 / len(lengths))
    token_ticks = np.array([seg[0, 1] for seg in ax.collections[0].get_segments()])
    assert token_ticks.tolist() == pytest.approx((np.array(lengths) / sum(lengths)).tolist())


def test_weights_figure_one_panel_per_reduction_on_one_scale():
    mask = lv.mask_from_lengths([2, 6])
    fig = weights_figure(mask, ["token_mean", "sample_mean"])
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 2
    assert images[0].get_clim() == images[1].get_clim() == (0.0, pytest.approx(0.25))
    assert "0.25, 0.75" in fig.axes[0].get_title() and "0.50, 0.50" in fig.axes[1].get_title()


def test_reduction_figure_draws_every_sample():
    mask = lv.mask_from_lengths([3, 1, 8], "left", 4)
    w = lv.weights(mask, "sum")
    shares = lv.sample_weights(mask, "sum").tolist()
    fig = reduction_figure(w, (mask == 0).numpy(), shares, [3, 1, 8], "sum")
    assert fig.axes == []  # drawn without Axes: each would cost more than the whole picture
    (image,) = [a for a in fig.artists if isinstance(a, BboxImage)]
    assert torch.equal(torch.from_numpy(np.ma.filled(image.get_array(), 0)), w.double())
    assert np.ma.getmaskarray(image.get_array()).tolist() == (mask == 0).tolist()
    rgba = image.to_rgba(image.get_array())
    assert np.allclose(rgba[1, 0], to_rgba(PAD_COLOR))  # sample 1 (one token) is left-padded
    (bars,) = [a for a in fig.artists if isinstance(a, PolyCollection)]
    heights = [p.vertices[:, 1].max() for p in bars.get_paths()]
    assert heights == pytest.approx(shares)
    dashed, token_ticks, _ = [a for a in fig.artists if isinstance(a, LineCollection)]
    assert dashed.get_segments()[0][0, 1] == pytest.approx(1 / 3)
    ticks = [seg[0, 1] for seg in token_ticks.get_segments()]
    assert ticks == pytest.approx([3 / 12, 1 / 12, 8 / 12])
    labels = {a.get_label() for a in fig.artists if isinstance(a, PathPatch)}
    # "1": the largest weight, printed after the title
    assert {"n=3", "n=1", "n=8", "1/3", "t = 7", "row 2", "1"} <= labels
    assert figure_png(fig).startswith(b"\x89PNG")
