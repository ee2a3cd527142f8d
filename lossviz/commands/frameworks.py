"""``lossviz frameworks-table``: measure every framework setting of the table across frameworks
(the transformers Trainer, PyTorch Lightning, accelerate's plain loop, its documented token-count
recipe and the recipe's fix) on the tiny model, in one process and on 2 gloo ranks, and the
Trainer on a vision-language and a mixture-of-experts model (its router aux loss), and rewrite the
cached table the notebooks and the README figure read (``lossviz/data/frameworks.json``)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out`` and ``--timeout``."""
    from ..trainers.frameworks import TABLE_FILE

    parser.add_argument(
        "--out", default=None, help=f"the JSON to write; default lossviz/data/{TABLE_FILE}"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds the 2-process runs may take before every rank is ended; default 300",
    )


def run(args: argparse.Namespace) -> int:
    """Measure, write the table, print one line per row; 2 on a failure."""
    from ..trainers import missing

    need = missing("transformers", "accelerate", "pytorch_lightning")
    if need:
        print(
            f"lossviz frameworks-table: error: needs {', '.join(need)}: "
            "pip install 'lossviz[trainers]'",
            file=sys.stderr,
        )
        return 2
    from ..distributed import DistributedRunError
    from ..trainers.frameworks import build_table, write_table

    try:
        table = build_table(timeout=args.timeout)
    except (ValueError, DistributedRunError) as err:
        print(f"lossviz frameworks-table: error: {err}", file=sys.stderr)
        return 2
    path = write_table(table, args.out)
    for row in table["rows"]:
        print(
            f"{row['framework']} {row['version']} ({row['label']}): {row['weight_model']}; "
            f"last window {row['last_window_model']} (total {row['last_window_total']:.3f}); "
            f"2 ranks {row['dp_model']}"
        )
    for row in table["model_rows"]:
        print(f"{row['framework']} {row['version']} ({row['label']}): {row['weight_model']}")
    print(f"wrote {path}")
    return 0
