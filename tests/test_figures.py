"""`python -m lossviz figures` writes every registered figure, and a re-run gives the same pixels."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from lossviz.commands import figures, main

REPO = Path(__file__).resolve().parents[1]


def test_registry_names_are_unique_pngs():
    names = [name for name, _ in figures.FIGURES]
    assert len(names) == len(set(names)) and all(n.endswith(".png") for n in names)
    assert "weights_token_vs_sample_mean.png" in names


def test_rerun_gives_identical_pixels_and_bytes(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["figures", str(first)]) == 0
    assert main(["figures", str(second)]) == 0
    for name, _ in figures.FIGURES:
        a, b = imread(first / name), imread(second / name)
        assert a.shape == b.shape and np.array_equal(a, b)
        assert (first / name).read_bytes() == (second / name).read_bytes()
        assert b"Software" not in (first / name).read_bytes()


@pytest.mark.parametrize("name", [name for name, _ in figures.FIGURES])
def test_committed_figure_is_up_to_date(tmp_path, name):
    committed = REPO / "figures" / name
    assert committed.exists(), f"run `make figures` and commit figures/{name}"
    main(["figures", str(tmp_path), "--only", name])
    assert np.array_equal(imread(committed), imread(tmp_path / name)), (
        f"figures/{name} is stale: run `make figures`"
    )


def test_command_line_entry_point(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "lossviz", "figures", str(tmp_path), "--only", "nope.png"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 2 and "unknown figure" in out.stderr


def test_readme_figure_shows_the_shares_the_readme_states():
    fig = dict(figures.FIGURES)["weights_token_vs_sample_mean.png"]()
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].endswith("0.17, 0.50, 0.33") and titles[1].endswith("0.33, 0.33, 0.33")
    sample_mean = fig.axes[1].get_images()[0].get_array()
    assert float(sample_mean[0, 0]) == pytest.approx(3 * float(sample_mean[1, 0]))
