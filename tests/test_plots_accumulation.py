"""The accumulation plots: pure functions returning a Figure."""

from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from lossviz.plots.accumulation import gradient_gap_bars, sample_weight_bars


def test_sample_weight_bars_draw_one_collection_per_column():
    fig = sample_weight_bars(
        [4, 3],
        {"full batch": [4 / 7, 3 / 7], "naive": [0.5, 0.5]},
        placement=[(0, 0), (0, 1)],
        gaps={"naive GA": 0.3},
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(polys) == 2 and all(len(p.get_paths()) == 2 for p in polys)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4 tok\nr0 mb0", "3 tok\nr0 mb1"]
    assert any("naive GA: 3.0e-01" in t.get_text() for t in ax.texts)


def test_gradient_gap_bars_handle_an_exact_zero():
    fig = gradient_gap_bars({"global GA": 0.0, "naive GA": 0.5})
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 2
