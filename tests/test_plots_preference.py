"""The preference-pair picture: numbers in, Figure out; rows, signs and padding."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from lossviz.plots.preference import pair_weights_figure


def test_rows_interleave_chosen_and_rejected_with_padding_masked():
    wc = np.array([[0.05, 0.05, 0.0], [0.05, 0.05, 0.05]])
    wr = np.array([[-0.05, -0.05, -0.05, -0.05], [-0.05, 0.0, 0.0, 0.0]])
    fig = pair_weights_figure(wc, wr, [2, 3], [4, 1], title="DPO")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    assert grid.shape == (4, 4)
    assert grid.mask.tolist()[0] == [False, False, True, True]  # chosen #0: 2 tokens, then padding
    assert grid.mask.tolist()[3] == [False, True, True, True]
    assert float(grid[1, 3]) == -0.05
    lo, hi = ax.images[0].get_clim()
    assert (lo, hi) == (-0.05, 0.05)  # symmetric: the sign reads off the colour
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[0] == "#0 chosen n=2  Σ=+0.1" and names[1] == "#0 rejected n=4  Σ=-0.2"
    # readable without the text below: ticks along t, a colour key, a legend for signs and padding
    assert ax.get_xlabel() == "response token t" and len(ax.get_xticks()) >= 3
    assert fig.axes[1].get_ylabel() == "push -dL/dlog π" and ax.get_title() == "DPO"
    (legend,) = fig.legends
    assert [t.get_text()[:6] for t in legend.get_texts()] == ["push >", "push <", "paddin"]
    # the colours of the RL bars: pushed up green, pushed down red, 0 white
    cmap = ax.images[0].get_cmap()
    assert cmap(1.0) == to_rgba("tab:green") and cmap(0.0) == to_rgba("tab:red")
    assert cmap(0.5) == pytest.approx(to_rgba("white"), abs=0.01)


def test_a_shared_labelled_scale():
    wc, wr = np.array([[0.05, 0.05]]), np.array([[-0.05, -0.05]])
    fig = pair_weights_figure(wc, wr, [2], [2], limit=1.0, label="push / largest push")
    assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)
    assert fig.axes[1].get_ylabel() == "push / largest push"
    with pytest.raises(ValueError, match="limit"):
        pair_weights_figure(wc, wr, [2], [2], limit=0.0)


def test_all_zero_weights_still_draw():
    fig = pair_weights_figure(np.zeros((1, 2)), np.zeros((1, 2)), [2], [2])
    assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="B = 2 pairs"):
        pair_weights_figure(np.zeros((1, 2)), np.zeros((1, 2)), [1, 2], [1, 2])
    with pytest.raises(ValueError, match="1 chosen lengths but 2"):
        pair_weights_figure(np.zeros((1, 2)), np.zeros((1, 2)), [1], [1, 2])
