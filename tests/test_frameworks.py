"""The table across frameworks: every pinned row re-measured (one process and 2 gloo ranks) and
compared with the cache; its figure, its picker and ``lossviz probe --trainer lightning/accelerate``."""

import json
import os

import pytest

pytest.importorskip("pytorch_lightning")  # the trainers extra; `make test` installs it
pytest.importorskip("accelerate")

from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lossviz.commands import main  # noqa: E402
from lossviz.distributed import DistributedRunError  # noqa: E402
from lossviz.plots.frameworks import FRAMEWORK_COLORS, frameworks_figure  # noqa: E402
from lossviz.trainers.frameworks import (  # noqa: E402
    ROWS,
    load_table,
    measure_rows,
    measure_runs,
    table_from_rows,
)
from lossviz.widgets.frameworks import framework_picker, render_framework  # noqa: E402


@pytest.fixture(scope="module")
def measured():
    """Every row of the table, measured now: 1 process, then all 2-rank runs in one process group."""
    return {row["key"]: (row, results) for row, results in measure_rows()}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_cached_table_is_what_the_pinned_versions_measure_now(measured):
    cached = load_table()
    fresh = table_from_rows([row for row, _ in measured.values()])
    assert [r["key"] for r in cached["rows"]] == [r.key for r in ROWS]
    assert fresh["rows"] == cached["rows"], "run `python -m lossviz frameworks-table`"
    assert fresh["setup"] == cached["setup"] and fresh["rules"] == cached["rules"]


def test_two_ranks_average_the_gradients_and_every_rank_process_is_gone(measured):
    for key, (row, (_, two)) in measured.items():
        assert two["world_size"] == 2 and len(two["pids"]) == 2, key
        assert all(gone(p) for p in two["pids"]), key
        assert row["dp_gradient_matches"] and row["max_residual_below_1e-5"], key
        full = two["steps"][0]
        assert full["plan"] and all(len(rank) == 2 for rank in full["plan"]), key
        if row["dp_model"] == "naive_configured":  # Lightning, accelerate's plain loop
            # each micro-batch's mean / K on its rank, then DDP's mean: 1 / (R K) per sample
            assert [sum(w) for w in full["measured"]] == pytest.approx([0.25] * 4, rel=1e-6)
    lightning = measured["lightning/automatic"][0]
    assert lightning["dp_model"] == "naive_configured"
    assert lightning["dp_dealing"] == "shuffled"  # its DistributedSampler shuffles a train set
    assert measured["transformers/ga"][0]["dp_model"] == "global"
    assert measured["accelerate/recipe"][0]["dp_model"] == "global_overcount"
    assert measured["accelerate/recipe_shifted"][0]["dp_model"] == "global"


def test_the_short_last_window_on_two_ranks(measured):
    for key, (row, (_, two)) in measured.items():
        last = two["steps"][-1]
        assert last["micro_batches"] == 1 < two["ga_steps"], key
        assert row["dp_last_window_model"] == row["last_window_model"], key
    lightning = measured["lightning/automatic"][1][1]["steps"][-1]
    assert [sum(w) for w in lightning["measured"]] == pytest.approx([0.25, 0.25], rel=1e-6)


def test_a_stuck_group_is_ended_and_no_process_is_left_behind():
    run = {"framework": "lightning", "setting": "automatic", "lengths": [3, 4], "world_size": 2}
    with pytest.raises(DistributedRunError, match="timed out") as err:
        measure_runs([run], timeout=0.3)
    assert len(err.value.pids) == 2 and all(gone(p) for p in err.value.pids)


def test_the_figure_colours_each_rule_cell_by_its_model():
    rows = load_table()["rows"]
    fig = frameworks_figure(rows)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "PyTorch\nLightning\n2.6.6" in texts and "Trainer,\nnum_items_in_batch" in texts
    colours = {tuple(round(x, 4) for x in p.get_facecolor()[:3]) for p in ax.patches}
    for r in rows:
        for k in ("weight_model", "last_window_model", "dp_model"):
            assert tuple(round(x, 4) for x in to_rgb(FRAMEWORK_COLORS[r[k]])) in colours
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "micro-batch mean / configured K" in legend and "token mean of the step" in legend
    with pytest.raises(ValueError, match="at least one row"):
        frameworks_figure([])
    with pytest.raises(ValueError, match="is not one of the models"):
        frameworks_figure([dict(rows[0], weight_model="magic")])


def test_the_picker_shows_the_chosen_row_and_its_fix():
    table = load_table()
    box = framework_picker(table)
    pick, out = box.children
    assert "nothing to fix" in out.value  # the first row: the Trainer
    pick.value = "accelerate/recipe"
    assert "labels[..., 1:] != -100" in out.value and "0.857" in out.value
    pick.value = "lightning/automatic"
    assert "2/3 = 0.667" in out.value and "shuffled" in out.value
    assert "Choose one of the measured settings" in render_framework("nope", table)


def test_probe_command_measures_lightning_and_accelerate(capsys):
    assert (
        main(["probe", "--trainer", "lightning", "--lengths", "3,9,2,5,7", "--ga-steps", "3"]) == 0
    )
    text = capsys.readouterr().out
    assert text.count("Verdict: PyTorch Lightning 2.6") == 2
    assert "optimizer step 1 of 2" in text and "naive_configured" in text
    args = ["probe", "--trainer", "accelerate", "--loop", "recipe", "--lengths", "3,9,2,5,7"]
    assert main([*args, "--ga-steps", "3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["trainer"] == "accelerate" and len(got["steps"]) == 2
    assert got["expected"] == "global_overcount" and "global_overcount" in got["matches"]
    assert got["steps"][1]["lengths"] == [5, 7]


def test_probe_command_refuses_a_bad_setup(capsys):
    bad = ["probe", "--trainer", "lightning", "--lengths", "3,4,5", "--world-size", "2"]
    assert main(bad) == 2
    assert "must be a multiple of per_device_batch_size x world_size = 2" in capsys.readouterr().err
    assert main(["probe", "--trainer", "lightning", "--loop", "recipe", "--lengths", "3"]) == 2
    assert (
        "lightning setting must be one of ('automatic', 'token_count')" in capsys.readouterr().err
    )
