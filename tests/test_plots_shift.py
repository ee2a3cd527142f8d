"""The causal-shift picture: one box per position in each row, labels drawn as given, bad rows refused."""

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

import lossviz as lv
from lossviz.plots.shift import IGNORED_COLOR, TRAINED_COLOR, shift_figure


def _boxes(fig):
    (ax,) = fig.axes
    return [p for p in ax.patches if isinstance(p, FancyBboxPatch)]


def _texts(fig):
    (ax,) = fig.axes
    return [t.get_text() for t in ax.texts]


def test_three_boxes_per_position_and_label_colours_follow_the_ignore_index():
    tokens = [5, 9, 2, 7]
    labels = lv.shift_labels(torch.tensor([tokens]))[0].tolist()
    labels[0] = -100  # the prompt token 9 is not trained
    fig = shift_figure(tokens, labels)
    assert isinstance(fig, Figure)
    boxes = _boxes(fig)
    assert len(boxes) == 3 * len(tokens)
    label_boxes = [b for b in boxes if b.get_y() < -0.2]  # the bottom row
    colours = [b.get_facecolor() for b in sorted(label_boxes, key=lambda b: b.get_x())]
    want = [IGNORED_COLOR, TRAINED_COLOR, TRAINED_COLOR, IGNORED_COLOR]
    assert all(np.allclose(c, to_rgba(w)) for c, w in zip(colours, want, strict=True))
    texts = _texts(fig)
    assert "$y_{2}$ = 2" in texts and "$y_{3}$ = 7" in texts and texts.count("-100") == 2
    assert any("trained (2)" in t for t in texts)


def test_one_dashed_arrow_per_trained_label_points_back_to_the_next_input():
    fig = shift_figure([5, 9, 2, 7], [9, 2, -100, -100])
    (ax,) = fig.axes
    dashed = [p for p in ax.patches if isinstance(p, FancyArrowPatch) and p.get_linestyle() != "-"]
    assert len(dashed) == 2


def test_a_single_token_row_has_nothing_to_train():
    fig = shift_figure([3], [-100])
    assert any("trained (0)" in t for t in _texts(fig))


@pytest.mark.parametrize(
    "tokens,labels,match",
    [
        ([], [], "empty"),
        ([5, 9], [9], "one label per position"),
        ([5, 9, 2], [5, 9, -100], "neither the next token"),  # not shifted
        ([5, 9], [9, 4], "neither the next token"),
        ([5, 9, 2], [9, 2, 2], "neither the next token"),
        ([5, 9], [9.5, -100], "whole numbers"),
        (["a", 9], [9, -100], "integers"),
    ],
)
def test_bad_rows_name_the_problem(tokens, labels, match):
    with pytest.raises(ValueError, match=match):
        shift_figure(tokens, labels)


def test_a_custom_ignore_index():
    fig = shift_figure([1, 2, 3], [2, -1, -1], ignore_index=-1)
    assert _texts(fig).count("-1") == 2
    with pytest.raises(ValueError, match="neither the next token"):
        shift_figure([1, 2, 3], [2, -100, -1], ignore_index=-1)
