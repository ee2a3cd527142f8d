"""The plots behind notebooks 08 and 09: pure functions, data in, Figure out."""

import numpy as np
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
    # the key is drawn by hand right of the axes: one label per curve, in drawing order
    assert [t.get_text() for t in fig.texts] == [f"{d} {m}" for d, m in errors]


def test_gradient_weight_bars_are_signed_and_coloured():
    fig = gradient_weights_figure([2, 4, 3], np.array([-0.25, 0.125, 0.0]), title="t")
    bars = fig.axes[0].patches
    assert [round(b.get_height(), 3) for b in bars] == [-0.25, 0.125, 0.0]
    assert bars[0].get_facecolor() != bars[1].get_facecolor()
