"""``python -m lossviz COMMAND`` (also the ``lossviz`` console script).

The app layer: every argparse parser and entry point of lossviz lives in this folder. Each command
is one module here that exposes ``add_arguments(parser)`` and ``run(args) -> int``; this file lists
them and builds one sub-parser per command. The commands call the math layer, the experiments and
``lossviz.trainers`` (the real third-party trainers); nothing below them imports a command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "audit": (
        "lossviz.commands.audit",
        "per-sample weights of a GA / data-parallel setup vs the full batch",
    ),
    "experiment": ("lossviz.commands.experiment", "train the tiny model under several reductions"),
    "probe": (
        "lossviz.commands.probe",
        "measure the real transformers Trainer's per-token weights",
    ),
    "probe-merge": (
        "lossviz.commands.probe_merge",
        "merge lv.probe records of your own multi-process run into the step's weights",
    ),
    "rl-experiment": (
        "lossviz.commands.rl_experiment",
        "RL-train the tiny policy under GRPO / DAPO / Dr. GRPO aggregation",
    ),
    "version-table": (
        "lossviz.commands.versions",
        "measure several released transformers versions' Trainer and rewrite the cached table",
    ),
    "figures": ("lossviz.commands.figures", "regenerate the README figures into a folder"),
    "frameworks-table": (
        "lossviz.commands.frameworks",
        "measure Lightning, accelerate and the Trainer and rewrite the cached table across frameworks",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="lossviz", description="How token losses become one scalar loss, and what it weights."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
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
