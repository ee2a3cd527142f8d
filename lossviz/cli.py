"""``python -m lossviz COMMAND`` (also the ``lossviz`` console script).

Each command lives in the module named for its idea and exposes ``add_arguments(parser)`` and
``run(args) -> int``; this file only lists them and builds one sub-parser per command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "audit": (
        "lossviz.audit",
        "per-sample weights of a GA / data-parallel setup vs the full batch",
    ),
    "experiment": ("lossviz.experiments.sft_cli", "train the tiny model under several reductions"),
    "probe": ("lossviz.probe_report", "measure the real transformers Trainer's per-token weights"),
    "rl-experiment": (
        "lossviz.experiments.rl_cli",
        "RL-train the tiny policy under GRPO / DAPO / Dr. GRPO aggregation",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="lossviz", description="How token losses become one scalar loss, and what it weights."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip())
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
