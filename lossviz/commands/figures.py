"""``python -m lossviz figures OUTDIR``: regenerate every figure the README shows, pixel for pixel.

:data:`FIGURES` is the registry: one ``(filename, make)`` pair per figure, ``make() -> Figure``. Adding a
figure is one line. Rendering uses Agg with fixed metadata (no date, no version string), so a re-run
writes identical files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["FIGURES", "DPI", "save", "add_arguments", "run"]

DPI = 100
# PNG text chunks matplotlib would otherwise fill with its version; None drops the key.
METADATA = {"Software": None}


def _weights_token_vs_sample_mean() -> Figure:
    from ..batching import mask_from_lengths
    from ..plots.reductions import weights_figure
    from ..reductions import sample_weights, weights

    mask = mask_from_lengths([2, 6, 4])
    names = ("token_mean", "sample_mean")
    w = {name: weights(mask, name) for name in names}
    shares = {name: sample_weights(mask, name) for name in names}
    return weights_figure(w, mask == 0, shares=shares, dpi=DPI)


def _experiment_accuracy_by_length() -> Figure:
    from ..experiments.sft_results import load_results
    from ..plots.experiment import experiment_figure

    return experiment_figure(load_results())


def _rl_incorrect_length() -> Figure:
    from ..experiments.rl_results import load_rl_results
    from ..plots.rl_experiment import rl_figure

    return rl_figure(load_rl_results())


def _frameworks() -> Figure:
    from ..plots.frameworks import frameworks_figure
    from ..trainers.frameworks import load_table

    table = load_table()
    return frameworks_figure(table["rows"] + table.get("model_rows", []), dpi=DPI)


FIGURES: list[tuple[str, Callable[[], Figure]]] = [
    ("weights_token_vs_sample_mean.png", _weights_token_vs_sample_mean),
    ("experiment_accuracy_by_length.png", _experiment_accuracy_by_length),
    ("rl_incorrect_length.png", _rl_incorrect_length),
    ("frameworks.png", _frameworks),
]


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG with fixed metadata and DPI; returns ``path``."""
    fig.savefig(path, format="png", dpi=DPI, metadata=METADATA)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``lossviz figures OUTDIR [--only NAME ...]``."""
    parser.add_argument("outdir", type=Path, help="folder to write the PNG files into")
    parser.add_argument("--only", nargs="*", help="filenames to regenerate (default: all)")


def run(args: argparse.Namespace) -> int:
    """Write every registered figure into OUTDIR (created if missing); print each path."""
    names = {name for name, _ in FIGURES}
    unknown = sorted(set(args.only or []) - names)
    if unknown:
        print(
            f"lossviz figures: unknown figure(s) {unknown}; registered: {sorted(names)}",
            file=sys.stderr,
        )
        return 2
    args.outdir.mkdir(parents=True, exist_ok=True)
    for name, make in FIGURES:
        if args.only and name not in args.only:
            continue
        print(save(make(), args.outdir / name))
    return 0
