"""``lossviz version-table``: install each transformers version beside the pinned set and measure
its Trainer (lengths 3, 7, 20, 5 under GA; a ``compute_loss`` override; 2 gloo ranks), then rewrite
the cached table the notebooks read (``--add``: merge the versions measured into it instead). Each
version goes to its own ``pip install --target`` folder under ``$LOSSVIZ_CACHE`` (default
``~/.cache/lossviz``)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--versions``, ``--out`` and ``--add``."""
    from ..trainers.versions import DATA, VERSIONS

    parser.add_argument(
        "--versions",
        default=",".join(VERSIONS),
        help=f"comma-separated transformers versions among {', '.join(VERSIONS)}; default all",
    )
    parser.add_argument("--out", default=str(DATA), help=f"the JSON to write; default {DATA.name}")
    parser.add_argument(
        "--add",
        action="store_true",
        help="merge the measured rows into the table already at --out (a version measured again "
        "replaces its row) instead of writing a table of these versions only",
    )


def run(args: argparse.Namespace) -> int:
    """Measure the chosen versions, write the table, print one line per version."""
    from ..trainers.versions import VERSIONS, build_table, load_table, merge_tables

    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    unknown = [v for v in versions if v not in VERSIONS]
    if unknown:
        print(
            f"lossviz version-table: --versions {unknown} are not measured versions; choose among "
            f"{', '.join(VERSIONS)}",
            file=sys.stderr,
        )
        return 2
    old = None
    if args.add:
        try:
            old = load_table(args.out)
        except (OSError, ValueError) as err:
            print(
                f"lossviz version-table: --add needs the table at {args.out} to merge into: {err}",
                file=sys.stderr,
            )
            return 2
    table = to_write = build_table(versions)
    if old is not None:
        try:
            to_write = merge_tables(old, table)
        except ValueError as err:
            print(f"lossviz version-table: {err}", file=sys.stderr)
            return 2
    with open(args.out, "w") as f:
        json.dump(to_write, f, indent=1)
        f.write("\n")
    for row in table["rows"]:
        if row["status"] == "measured":
            cells = ", ".join(f"{k}: {row[k]['model']}" for k in ("ga", "compute_loss", "ranks"))
            print(f"{row['version']:>8}  {cells}, +1 token per row: {row['overcount']}")
        else:
            print(f"{row['version']:>8}  {row['status']}: {row['reason']}")
    return 0
