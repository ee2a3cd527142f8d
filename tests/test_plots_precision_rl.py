"""The plots behind notebooks 08 and 09: pure functions, data in, Figure out."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from lossviz import precision as P
from lossviz.plots.precision import error_curves_figure
from lossviz.plots.rl import gradient_weights_figure


def test_error_curves_put_overflow_on_the_top_edge_and_exact_on_the_bottom():
    ns = np.array([1, 10, 100])
    fig = error_curves_figure(
        ns, {("float16", "torch"): np.array([0.0, 1e-3, np.inf])}, marker_n=10
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(line.get_ydata(), [-10, -3, 1])  # log10, clipped to the edges
    crosses = fig.axes[0].lines[1]
    np.testing.assert_allclose(crosses.get_ydata(), [1])


def test_error_curves_for_the_stored_table():
    table = P.curves()
    errors = {(d, m): table.error(d, "sum", m) for d in P.DTYPES for m in P.METHODS}
    fig = error_curves_figure(table.ns, errors)
    # a legend right of the axes: one label per curve, in drawing order; no marker, no marker entry
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [f"{d} {m}" for d, m in errors]
    marked = error_curves_figure(table.ns, errors, marker_n=1000)
    assert [t.get_text() for t in marked.legends[0].get_texts()][-1] == "your token count"
    assert marked.axes[0].lines[-1].get_visible()  # ... and the line it names is drawn
    ax = fig.axes[0]
    assert "tokens" in ax.get_xlabel() and "relative error" in ax.get_ylabel()
    assert len(ax.get_xticks()) >= 6 and "sum" not in ax.get_title()  # no title was asked for


def _bars(fig):
    (bars,) = [a for a in fig.axes[0].collections if a.get_gid() == "bars"]
    return bars


def test_gradient_weight_bars_are_signed_and_coloured():
    # dL/dlog π in, the push -dL/dlog π drawn: pushed up points up, in green
    fig = gradient_weights_figure([2, 4, 3], np.array([-0.25, 0.125, 0.0]), title="t")
    bars = _bars(fig)
    # bars are drawn in value units: each bar rises from 0 to its value
    heights = [p.vertices[:, 1].max() + p.vertices[:, 1].min() for p in bars.get_paths()]
    assert [round(h, 3) for h in heights] == [0.25, -0.125, 0.0]
    colors = bars.get_facecolor()
    assert tuple(colors[0]) != tuple(colors[1]) != tuple(colors[2])
    assert tuple(colors[0]) == to_rgba("tab:green") and tuple(colors[1]) == to_rgba("tab:red")
    # readable without the text below: a title, labelled axes with ticks, a legend of the colours
    (ax,) = fig.axes
    assert ax.get_title() == "t: push -dL/dlog π on one token of each response"
    assert ax.get_ylabel() == "push on one token" and "response" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["#0\nn=2", "#1\nn=4", "#2\nn=3"]
    (legend,) = fig.legends
    assert [t.get_text()[:8] for t in legend.get_texts()] == ["> 0, up:", "< 0, dow"]
    # the value axis spans both signs, rounded out: -0.125 .. 0.25 -> -0.2 .. 0.25
    assert ax.get_ylim() == pytest.approx((-0.2, 0.25)) and len(ax.get_yticks()) >= 3


def test_gradient_weight_bars_place_values_on_one_scale():
    fig = gradient_weights_figure([5, 5], [0.5, -1.0])  # pushes -0.5 and 1.0
    (neg, pos) = _bars(fig).get_paths()
    to_fig = fig.axes[0].transData - fig.transFigure
    zero, low = to_fig.transform([(0, 0), (0, -0.5)])[:, 1]
    top = to_fig.transform((0, 1.0))[1]
    assert 0 < low < zero < top < 1
    assert np.isclose(top - zero, 2 * (zero - low))  # one scale for both signs


def test_gradient_weight_bars_all_zero_tiny_and_many_responses():
    fig = gradient_weights_figure([3, 9], [0.0, 0.0])
    assert fig.axes[0].get_ylim() == (-1.0, 1.0)  # no made-up scale: a symmetric unit range
    tiny = gradient_weights_figure([3, 9], [1e-320, -1e-320])
    assert tiny.axes[0].get_ylabel().startswith("push on one token (x ")  # drawn in units
    many = gradient_weights_figure(list(range(1, 17)), np.linspace(-1, 1, 16))
    labels = [t.get_text() for t in many.axes[0].get_xticklabels()]
    assert len(_bars(many).get_paths()) == 16 and "#15" in labels


def test_token_push_bars_one_per_token_grouped_and_signed():
    from lossviz.plots.rl import token_push_figure

    push = [[0.25, 0.25, 0.0, 0.0], [-0.125, -0.125, -0.125, -0.125]]
    fig = token_push_figure(push, [2, 4], labels=["A=+1", "A=-1"])
    bars = fig.axes[0].patches
    assert len(bars) == 6  # padding has no bar
    assert [b.get_x() + b.get_width() / 2 for b in bars] == [
        0,
        1,
        3,
        4,
        5,
        6,
    ]  # a gap between groups
    assert [round(b.get_height(), 3) for b in bars] == [0.25, 0.25, -0.125, -0.125, -0.125, -0.125]
    assert bars[0].get_facecolor() == to_rgba("tab:green")  # pushed up: up and green
    assert bars[2].get_facecolor() == to_rgba("tab:red")
    assert fig.axes[0].get_ylabel() == "push -dL/dlog π"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["A=+1", "A=-1"]
    with pytest.raises(ValueError, match="lengths"):
        token_push_figure(push, [2, 5])
