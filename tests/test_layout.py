"""The package's folders keep working after a move: every command, every module a subprocess
starts by name, every data file a module points at."""

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from lossviz.commands import COMMANDS, build_parser

PKG = Path(__file__).resolve().parents[1] / "lossviz"


def test_python_m_lossviz_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "lossviz", "--help"], capture_output=True, text=True, check=True
    )
    for name in COMMANDS:
        assert name in out.stdout, f"`python -m lossviz --help` does not list {name}"
    assert {"audit", "probe", "experiment", "rl-experiment", "version-table", "figures"} <= set(
        COMMANDS
    )


def test_every_command_module_lives_in_the_commands_folder_and_builds():
    parser = build_parser()
    for module, _ in COMMANDS.values():
        assert module.startswith("lossviz.commands."), module
        mod = importlib.import_module(module)
        assert callable(mod.add_arguments) and callable(mod.run), module
    assert parser.parse_args(["figures", "out"]).command == "figures"


def _argparse_users() -> list[str]:
    found = []
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "ArgumentParser":
                found.append(path.relative_to(PKG).as_posix())
    return sorted(set(found))


def test_every_argument_parser_is_built_in_the_commands_folder():
    outside = [p for p in _argparse_users() if not p.startswith("commands/")]
    assert not outside, f"argparse parsers outside lossviz/commands/: {outside}"


def _module_strings() -> list[tuple[str, str]]:
    """``(file, module)`` for every string in the package that names a lossviz module to run
    (``"-m", "lossviz..."`` or a module given to :func:`lossviz.trainers.ranks.run_ranks`)."""
    found = []
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.List | ast.Tuple):
                items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
                for a, b in zip(items, items[1:], strict=False):
                    if a == "-m" and isinstance(b, str) and b.startswith("lossviz"):
                        found.append((path.relative_to(PKG).as_posix(), b))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "run_ranks":
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append((path.relative_to(PKG).as_posix(), first.value))
    return found


def test_every_module_a_subprocess_starts_by_name_exists():
    found = _module_strings()
    assert ("trainers/hf_trainer.py", "lossviz.trainers.hf_trainer") in found
    assert ("trainers/frameworks.py", "lossviz.trainers.frameworks") in found
    for file, module in found:
        assert importlib.util.find_spec(module) is not None, f"{file} starts missing {module}"


@pytest.mark.parametrize(
    "module, attr",
    [
        ("lossviz.trainers.versions", "DATA"),
        ("lossviz.precision", "TABLE_PATH"),
        ("lossviz.experiments.sft_results", "DEFAULT_CACHE"),
        ("lossviz.experiments.rl_results", "DEFAULT_RL_CACHE"),
    ],
)
def test_every_data_path_a_module_names_exists(module, attr):
    path = getattr(importlib.import_module(module), attr)
    assert Path(path).is_file(), f"{module}.{attr} = {path} is missing"
    assert Path(path).parent == PKG / "data"
