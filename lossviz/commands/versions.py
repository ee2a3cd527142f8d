"""``lossviz version-table``: install each transformers version beside the pinned set and measure
its Trainer (lengths 3, 7, 20, 5 under GA; a ``compute_loss`` override; 2 gloo ranks), then rewrite
the cached table the notebooks read. Each version goes to its own ``pip install --target`` folder
under ``$LOSSVIZ_CACHE`` (default ``~/.cache/lossviz``)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--versions`` and ``--out``."""
    from ..trainers.versions import DATA, VERSIONS

    parser.add_argument(
        "--versions",
        default=",".join(VERSIONS),
        help=f"comma-separated transformers versions among {', '.join(VERSIONS)}; default all",
    )
    parser.add_argument("--out", default=str(DATA), help=f"the JSON to write; default {DATA.name}")


def run(args: argparse.Namespace) -> int:
    """Measure the chosen versions, write the table, print one line per version."""
    from ..trainers.versions import VERSIONS, build_table

    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    unknown = [v for v in versions if v not in VERSIONS]
    if unknown:
        print(
            f"lossviz version-table: --versions {unknown} are not measured versions; choose among "
            f"{', '.join(VERSIONS)}",
            file=sys.stderr,
        )
        return 2
    table = build_table(versions)
    with open(args.out, "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")
    for row in table["rows"]:
        if row["status"] == "measured":
            cells = ", ".join(f"{k}: {row[k]['model']}" for k in ("ga", "compute_loss", "ranks"))
            print(f"{row['version']:>8}  {cells}, +1 token per row: {row['overcount']}")
        else:
            print(f"{row['version']:>8}  {row['status']}: {row['reason']}")
    return 0
