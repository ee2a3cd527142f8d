"""The RL primer's pictures: pure functions, numbers in, a labelled Figure out."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from lossviz.plots.rl_primer import (
    advantages_figure,
    clip_figure,
    group_figure,
    ratio_drift_figure,
)


def test_group_figure_one_box_per_token_coloured_by_reward():
    fig = group_figure([["a", "</s>"], ["b", "c", "</s>"]], [1.0, 0.0], prompt="p", target="a")
    (ax,) = fig.axes
    assert len(ax.patches) == 5
    assert ax.patches[0].get_facecolor() != ax.patches[2].get_facecolor()
    assert "G = 2" in ax.get_title(loc="left") and [t.get_text() for t in ax.get_yticklabels()] == [
        "#0",
        "#1",
    ]
    with pytest.raises(ValueError, match="one reward each"):
        group_figure([["a"]], [1.0, 0.0])


def test_advantages_figure_bars_are_signed_and_coloured():
    fig = advantages_figure([1, 0, 0, 0], {"plain": [0.75, -0.25, -0.25, -0.25]})
    left, right = fig.axes
    heights = [p.get_height() for p in right.patches]
    assert heights == [0.75, -0.25, -0.25, -0.25]
    assert right.patches[0].get_facecolor() == to_rgba("tab:green")
    assert right.patches[1].get_facecolor() == to_rgba("tab:red")
    assert left.lines[0].get_ydata()[0] == pytest.approx(0.25)  # the group mean
    with pytest.raises(ValueError, match="advantages"):
        advantages_figure([1, 0], {"plain": [1.0]})


def test_ratio_drift_one_line_per_token_and_the_clip_band():
    r = np.array([[1.0, 1.0, 1.0], [1.3, 0.5, 0.9]])
    fig = ratio_drift_figure(r, [1.0, -1.0, -1.0], epsilon=0.2)
    (ax,) = fig.axes
    assert len(ax.lines) == 3 and ax.get_yscale() == "log"
    assert ax.lines[-1].get_color() == "tab:green"  # A > 0 drawn on top
    assert {"0.8", "1", "1.2"} <= {t.get_text() for t in ax.get_yticklabels()}
    with pytest.raises(ValueError, match="tokens"):
        ratio_drift_figure(r, [1.0, -1.0])


def test_clip_figure_marks_clipped_tokens_hollow():
    fig = clip_figure([1.3, 1.1, 0.5, 0.9], [1, 1, -1, -1], [0.0, 1.1, 0.0, 0.9], epsilon=0.2)
    pos, neg = fig.axes[:2]
    filled, hollow = pos.collections[:2]
    assert filled.get_offsets().tolist() == [[1.1, 1.1]]
    assert hollow.get_offsets().tolist() == [[1.3, 0.0]]
    assert "1.2" in pos.get_title() and "0.8" in neg.get_title()
    with pytest.raises(ValueError, match="one per token"):
        clip_figure([1.0], [1, 1], [1.0])
