"""Chat plots: pure functions that return a Figure whose artists reflect the data."""

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection

from lossviz.plots.chat import ROLE_COLORS, ratio_histogram, share_curves, token_strip


def test_token_strip_colours_zero_weight_grey_and_roles_in_the_band():
    fig = token_strip(["a", "b", "c"], ["user", "assistant", "assistant"], [0.0, 0.5, 1.0])
    ax = fig.axes[0]
    cells, bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    faces = cells.get_facecolors()
    assert np.allclose(faces[0], mcolors.to_rgba("#efefef"))  # untrained: light grey, not green
    assert faces[2][:3].sum() < faces[1][:3].sum()  # heavier weight, darker green
    assert np.allclose(bands.get_facecolors()[1], mcolors.to_rgba(ROLE_COLORS["assistant"]))
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]


def test_template_tokens_are_shorter_cells():
    fig = token_strip(["<|im_start|>", "x"], ["user", "user"], [1.0, 1.0], [True, False])
    cells = fig.axes[0].collections[0]
    heights = [np.ptp(p.vertices[:, 1]) for p in cells.get_paths()]
    assert heights[0] < heights[1]


def test_share_curves_and_histogram():
    plw = np.linspace(0, 1, 11)
    fig = share_curves({"RACE-like": 0.01}, plw, {"RACE-like": 0.01 / (0.01 + plw)})
    ax, zero = fig.axes
    (line,) = ax.lines
    assert ax.get_xscale() == "log" and ax.get_xlim() == pytest.approx((0.1, 1.0))
    assert line.get_xdata()[0] == pytest.approx(0.1)  # plw = 0 is not on the log axis
    assert line.get_ydata()[0] == pytest.approx(0.01 / 0.11)
    (dot,) = zero.lines  # ... but drawn on its own axis at 0
    assert list(dot.get_xdata()) == [0.0] and list(dot.get_ydata()) == [1.0]
    with pytest.raises(ValueError, match="at least one value > 0"):
        share_curves({"a": 0.1}, [0.0], {"a": [1.0]})
    fig = ratio_histogram({"a": [0.01, 0.02], "b": [5.0]}, {"arithmetic": 1.7, "geometric": 0.1})
    assert [ln.get_xdata()[0] for ln in fig.axes[0].lines] == [1.7, 0.1]
    means = {"arithmetic": 1.7, "geometric": 0.1, "pooled": 0.5}
    fig = ratio_histogram({"a": [0.01, 0.02], "b": [5.0]}, means)
    assert [ln.get_xdata()[0] for ln in fig.axes[0].lines] == [1.7, 0.1, 0.5]


def test_explorer_figure_is_labelled_and_bar_heights_follow_totals():
    from lossviz.plots.chat import chat_weights_figure

    rows = [(["a", "b"], ["user", "assistant"], [0.0, 1.0])]
    fig = chat_weights_figure(rows, [[False, False]], ["user", "assistant"], [0.25, 0.75])
    strip, colorbar, bars_ax = fig.axes
    cells, bands = strip.collections
    assert np.allclose(cells.get_facecolors()[0], mcolors.to_rgba("#efefef"))  # weight 0
    assert np.allclose(bands.get_facecolors()[1], mcolors.to_rgba(ROLE_COLORS["assistant"]))
    # a reader needs no text below: a colour key for weights, a legend for roles, labelled axes
    assert colorbar.get_ylabel() == "token weight W" and colorbar.get_ylim() == (0.0, 1.0)
    (legend,) = fig.legends
    names = [t.get_text() for t in legend.get_texts()]
    assert names[:3] == list(ROLE_COLORS) and "weight 0 (not trained)" in names
    assert "weight" in strip.get_title() and "token position" in strip.get_xlabel()
    assert [t.get_text() for t in strip.get_yticklabels()] == ["token 0"]
    assert bars_ax.get_ylabel() == "share of the loss" and "turn" in bars_ax.get_xlabel()
    assert [t.get_text() for t in bars_ax.get_xticklabels()] == ["0 user", "1 assistant"]
    assert len(bars_ax.get_yticks()) >= 3
    (bars,) = bars_ax.collections
    heights = [np.ptp(p.vertices[:, 1]) for p in bars.get_paths()]
    assert heights == pytest.approx([0.25, 0.75])
    assert np.allclose(bars.get_facecolors()[0], mcolors.to_rgba(ROLE_COLORS["user"]))


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_token_strip_labels_are_readable_and_never_overlap():
    pieces = [
        "<|im_start|>",
        "assistant",
        "\n",
        "\u2581arachnids",
        "\u2581antennae",
        "<|im_end|>",
    ] * 5
    fig = token_strip(pieces, ["assistant"] * 30, [1.0] * 30, per_row=12)
    renderer = FigureCanvasAgg(fig).get_renderer()
    texts = fig.axes[0].texts
    assert [t.get_text() for t in texts[:3]] == ["im_start", "assistant", "\u21b5"]  # no <s| glyphs
    assert min(t.get_fontsize() for t in texts) >= 6
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    key = [t.get_text() for t in fig.texts]  # the glyphs are explained on the figure itself
    assert any("<|im_start|>" in k and "newline" in k and "space" in k for k in key)


def test_ratio_histogram_legend_stays_clear_of_the_bars():
    means = {"arithmetic": 1.7, "geometric": 0.1, "pooled": 0.5}
    fig = ratio_histogram({"a": [0.01, 0.02, 0.02], "b": [0.3, 5.0, 5.0]}, means)
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for p in ax.patches if p.get_height() > 0]
    assert bars and not any(_overlap(legend, b) for b in bars)
