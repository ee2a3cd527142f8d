"""The command-line options and the run-and-write flow both experiment commands share."""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence

from ..checks import arg_type, int_arg, parse_list
from ..experiments.results import check_writable, fallback_path, save_results

__all__ = ["seed_list", "add_arm_options", "add_number_options", "add_output_options"]
__all__ += ["checked_config", "write_results"]


def seed_list(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``: distinct non-negative seeds (``ValueError`` otherwise)."""
    seeds = tuple(parse_list(text, "seed", low=0, example="0,1,2"))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct: {text!r}")
    return seeds


def _arm_list(arms: Mapping[str, object], example: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(parse_list(text, "arm", kind=str, example=example))
        unknown = [a for a in chosen if a not in arms]
        if unknown or len(set(chosen)) != len(chosen):
            raise ValueError(
                f"unknown or repeated arm(s) {unknown or text!r}; choose from {', '.join(arms)}"
            )
        return chosen

    return parse


def add_arm_options(
    parser: argparse.ArgumentParser,
    arms: Mapping[str, object],
    *,
    default_arms: Sequence[str],
    default_seeds: Sequence[int],
    seeds_help: str,
) -> None:
    """``--arms`` (names of ``arms``, each with a ``label``) and ``--seeds``."""
    labels = "; ".join(f"{name}: {arm.label}" for name, arm in arms.items())
    parser.add_argument(
        "--arms",
        type=arg_type(_arm_list(arms, ",".join(list(arms)[:2]))),
        default=tuple(default_arms),
        help=f"comma-separated arms (default: {','.join(default_arms)}). {labels}",
    )
    parser.add_argument(
        "--seeds",
        type=arg_type(seed_list),
        default=tuple(default_seeds),
        help=f"comma-separated seeds; {seeds_help} (default: {','.join(map(str, default_seeds))})",
    )


def add_number_options(
    parser: argparse.ArgumentParser, defaults: object, options: Sequence[tuple]
) -> None:
    """One option per ``(flag, type, help)``; ``type`` ``int`` means a positive integer; the
    default is the attribute of ``defaults`` named like the flag (``--max-new`` -> ``max_new``)."""
    for flag, kind, text in options:
        default = getattr(defaults, flag[2:].replace("-", "_"))
        parser.add_argument(
            flag,
            type=int_arg(flag) if kind is int else kind,
            default=default,
            help=f"{text} (default: {default})",
        )


def add_output_options(parser: argparse.ArgumentParser, cache: str) -> None:
    """``--out PATH`` (checked before training) and ``--no-progress``."""
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help=f"write the results as JSON here, checked before training (lossviz/data/{cache} is "
        "the notebook's cache); without it only the tables are printed",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bar")


def checked_config(args: argparse.Namespace, command: str, make: Callable[[], object]):
    """``make()`` (the config the options describe) once ``--out`` is known to be writable; on a
    problem, the message on stderr and ``None`` (the command exits 2 before any training)."""
    try:
        cfg = make()
        if args.out is not None:
            try:
                check_writable(args.out)
            except OSError as err:
                raise ValueError(f"--out {err}") from None
    except ValueError as err:
        print(f"lossviz {command}: error: {err}", file=sys.stderr)
        return None
    return cfg


def write_results(results: dict, out: pathlib.Path | None, command: str) -> int:
    """Write ``results`` to ``--out`` (if given); the exit status. When the path stopped being
    writable during training, the finished runs go to a temporary file named on stderr (exit 1)."""
    if out is None:
        return 0
    try:
        print(f"wrote {save_results(results, out)}")
    except OSError as err:
        fallback = save_results(results, fallback_path(f"lossviz-{command}-"))
        print(
            f"lossviz {command}: error: could not write {out} ({err}); the results are in "
            f"{fallback}",
            file=sys.stderr,
        )
        return 1
    return 0
