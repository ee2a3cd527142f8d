"""The reduction pictures: padding is grey, weights are drawn as given, shares carry both lines."""

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

import lossviz as lv
from lossviz.plots.reductions import (
    PAD_COLOR,
    ReductionPicture,
    draw_sample_shares,
    draw_weights,
    nice_ceiling,
    reduction_figure,
    weights_figure,
)
from lossviz.widgets.base import figure_png


def _image(ax):
    (im,) = ax.get_images()
    return im


def test_padding_cells_are_grey_and_zero_weight_cells_are_not():
    mask, ids = lv.batching.pack_lengths(
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
    names = ["token_mean", "sample_mean"]
    w = {r: lv.weights(mask, r) for r in names}
    shares = {r: lv.sample_weights(mask, r) for r in names}
    fig = weights_figure(w, mask == 0, shares=shares)
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 2
    assert images[0].get_clim() == images[1].get_clim() == (0.0, pytest.approx(0.25))
    assert "0.25, 0.75" in fig.axes[0].get_title() and "0.50, 0.50" in fig.axes[1].get_title()
    assert np.array_equal(np.ma.filled(images[1].get_array(), 0.0), w["sample_mean"].numpy())


def test_weights_figure_takes_plain_numbers():
    """Lists and numpy arrays in, no torch: the picture draws the W it is given."""
    w = [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]
    pad = np.array([[False, False, True], [False, True, True]])
    fig = weights_figure({"made up": np.array(w)}, pad)
    (image,) = fig.axes[0].get_images()
    assert np.ma.filled(image.get_array(), -1.0).tolist() == [[0.5, 0.5, -1.0], [1.0, -1.0, -1.0]]
    assert fig.axes[0].get_title() == "made up"  # no shares given: no shares written
    im = draw_weights(Figure().subplots(), w, pad.tolist())
    assert np.ma.getmaskarray(im.get_array()).tolist() == pad.tolist()


def test_weights_figure_explains_a_shape_mismatch():
    with pytest.raises(ValueError, match="pad's shape"):
        weights_figure({"sum": np.ones((2, 3))}, np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="weights is empty"):
        weights_figure({}, np.zeros((2, 4), bool))


def test_reduction_figure_draws_every_sample_on_labelled_axes():
    mask = lv.mask_from_lengths([3, 1, 8], "left", 4)
    w = lv.weights(mask, "sum")
    shares = lv.sample_weights(mask, "sum").tolist()
    fig = reduction_figure(w, (mask == 0).numpy(), shares, [3, 1, 8], "sum")
    heat, colorbar, bars_ax = fig.axes
    image = _image(heat)
    assert torch.equal(torch.from_numpy(np.ma.filled(image.get_array(), 0)), w.double())
    assert np.ma.getmaskarray(image.get_array()).tolist() == (mask == 0).tolist()
    assert np.allclose(image.to_rgba(image.get_array())[1, 0], to_rgba(PAD_COLOR))  # left-padded
    assert image.get_clim() == (0.0, 1.0)  # the largest weight (1) is the colour bar's top
    # what a reader needs without the text: titles, axis labels, ticks, a colour key, a legend
    assert "sum" in heat.get_title() and "share" in bars_ax.get_title()
    assert heat.get_xlabel() == "position t" and heat.get_ylabel() == "row b"
    assert colorbar.get_ylabel() == "weight W[b, t]"
    assert bars_ax.get_ylabel() == "share of the loss" and "sample" in bars_ax.get_xlabel()
    assert len(heat.get_xticks()) >= 3 and len(bars_ax.get_yticks()) >= 3
    labels = [t.get_text() for t in bars_ax.get_xticklabels()]
    assert labels == ["0\n(n=3)", "1\n(n=1)", "2\n(n=8)"]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "padding (no sample)",
        "share of the loss",
        "every sample equal (1/B)",
        "every token equal (n_b/N)",
    ]
    heights = [p.get_height() for p in bars_ax.patches if p.get_visible()]
    assert heights == pytest.approx(shares)
    dashed = bars_ax.get_lines()[0]
    assert dashed.get_ydata()[0] == pytest.approx(1 / 3)
    ticks = [seg[0, 1] for seg in bars_ax.collections[0].get_segments()]
    assert ticks == pytest.approx([3 / 12, 1 / 12, 8 / 12])
    assert figure_png(fig).startswith(b"\x89PNG")


def test_one_picture_moves_to_fewer_samples_and_hides_the_rest():
    picture = ReductionPicture(4)
    mask = lv.mask_from_lengths([2, 5])
    shares = lv.sample_weights(mask, "token_mean").tolist()
    picture.update(lv.weights(mask), (mask == 0).numpy(), shares, [2, 5], "token_mean")
    visible = [p.get_height() for p in picture.shares.patches if p.get_visible()]
    assert visible == pytest.approx([2 / 7, 5 / 7])
    assert picture.shares.get_xlim() == pytest.approx((-0.6, 1.6))
    assert picture.heat.get_xlim() == pytest.approx((-0.5, 4.5))  # batch width 5


@pytest.mark.parametrize(
    ("x", "top"), [(0.0, 1.0), (0.03, 0.05), (0.05, 0.05), (0.21, 0.25), (0.7, 1.0), (3.0, 5.0)]
)
def test_nice_ceiling(x, top):
    assert nice_ceiling(x) == pytest.approx(top)
