"""The package's layers, read from the source: every import, function bodies included.

The rule a reader can rely on (README, "How it is built"):

- **math** (``lossviz/*.py`` and ``lossviz/experiments/``): may import torch and numpy; never
  matplotlib, ipywidgets, a training library (:data:`TRAINER_LIBS`), ``lossviz.plots``,
  ``lossviz.widgets``, ``lossviz.trainers`` or ``lossviz.commands``.
- **trainers** (``lossviz/trainers/``): the only modules that import a training library
  (transformers, accelerate, TRL, datasets, tokenizers, verl, Lightning, ...); they build on the
  math layer and never import plots, widgets or commands.
- **plots** (``lossviz/plots/``): numbers in (lists, numpy arrays), a matplotlib ``Figure`` out. They
  import the standard library, numpy, matplotlib and other plots modules only: never torch,
  ipywidgets or a lossviz math module, so a plot can never compute ``W``.
- **widgets** (``lossviz/widgets/``): ipywidgets controls wired to a pure render that calls math
  functions, plots and (for the explorers that run a real trainer step) ``lossviz.trainers``. Never
  torch nor a training library directly: a forward or backward pass belongs below. What a widget
  remembers lives in its explorer's ``Canvas`` (``canvas.memo``), never in a module-level cache.
- **app** (``lossviz/commands/``, ``lossviz/__main__.py``): every parser and entry point; may import
  any lossviz module, but a training library only through ``lossviz.trainers``.
- no import cycles.

A violation fails naming the file, the import and the rule it breaks.
"""

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "lossviz"

# Third-party packages by layer (the standard library is open to every layer).
TRAINER_LIBS = {
    "transformers",
    "accelerate",
    "trl",
    "datasets",
    "tokenizers",
    "verl",
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "peft",
    "deepspeed",
}
MATH_NEVER = {"matplotlib", "ipywidgets", "IPython"} | TRAINER_LIBS
PLOTS_MAY = {"numpy", "matplotlib"}
WIDGETS_NEVER = {"torch"} | TRAINER_LIBS

# Widgets that still keep a module-level cache shared by every explorer: none (each explorer
# remembers its results in its own canvas).
KNOWN_SHARED_CACHES: set[str] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, name: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, absolute module)`` for every import in ``source`` of module ``name``.

    ``from .x import y`` gives ``<package>.x.y`` when that is a module of this package, else
    ``<package>.x``; a literal ``importlib.import_module("m")`` counts as an import of ``m``.
    """
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _resolve(target: str, modules: set[str]) -> str:
    """The module ``target`` names: itself, else its longest prefix that is a lossviz module."""
    if not target.startswith("lossviz"):
        return target
    while target not in modules and "." in target:
        target = target.rpartition(".")[0]
    return target


def layer(module: str) -> str:
    """``math``, ``trainers``, ``plots``, ``widgets`` or ``app`` for a lossviz module."""
    if module == "lossviz.__main__":
        return "app"
    for folder, name in (("commands", "app"), ("trainers", "trainers"), ("plots", "plots")):
        if module == f"lossviz.{folder}" or module.startswith(f"lossviz.{folder}."):
            return name
    if module == "lossviz.widgets" or module.startswith("lossviz.widgets."):
        return "widgets"
    return "math"


PLOTS_RULE = "plots import only numpy, matplotlib and other plots (numbers in, a Figure out)"
LIBS_RULE = "training libraries are imported only under lossviz/trainers/"


def layer_violation(module: str, target: str) -> str | None:
    """The rule ``module`` breaks by importing ``target`` (absolute), or ``None``."""
    own = layer(module)
    top = target.split(".")[0]
    inside = layer(target) if top == "lossviz" else None
    if top in TRAINER_LIBS and own != "trainers":
        return LIBS_RULE
    if own == "app":
        return None
    if own == "math":
        if top in MATH_NEVER or inside in ("plots", "widgets", "trainers", "app"):
            return "math never imports matplotlib, ipywidgets, plots, widgets, trainers or an app module"
        return None
    if own == "trainers":
        if inside in ("plots", "widgets", "app"):
            return "trainers build on the math layer; never plots, widgets or an app module"
        return None
    if own == "plots":
        if top == "lossviz":
            return None if inside == "plots" else PLOTS_RULE
        if top in sys.stdlib_module_names or top in PLOTS_MAY or top == "__future__":
            return None
        return PLOTS_RULE
    if top in WIDGETS_NEVER or inside == "app":
        return "widgets never import torch (they call the math layer) nor an app module"
    return None


def _files() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def layer_violations() -> list[tuple[str, int, str, str]]:
    """``(file, line, import, rule)`` for every import in the package that breaks the rule."""
    files = _files()
    modules = set(files)
    out = []
    for name, path in files.items():
        rel = path.relative_to(PKG.parent).as_posix()
        source = path.read_text(encoding="utf-8")
        for line, target in imported_names(source, name, path.name == "__init__.py"):
            rule = layer_violation(name, _resolve(target, modules))
            if rule:
                out.append((rel, line, target, rule))
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the lossviz modules it imports; package ``__init__`` files are left out (they
    gather the public names, so they import everything below them by design)."""
    files = _files()
    modules = set(files)
    inits = {m for m in modules if files[m].name == "__init__.py"}
    graph = {}
    for name, path in files.items():
        if path.name == "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        targets = {_resolve(t, modules) for _, t in imported_names(source, name)}
        graph[name] = (targets & modules) - inits - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "lossviz.chat" in graph and "lossviz.tokenizer" in graph["lossviz.chat"]
    assert "lossviz.plots.reductions" in graph["lossviz.plots.probe"]  # relative imports read
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_import_reader_sees_every_kind_of_import():
    source = (
        "import torch.nn as nn\n"
        "from .. import checks, reductions\n"
        "from ..plots.chat import ChatPicture\n"
        "def later():\n"
        "    import ipywidgets\n"
        "    return importlib.import_module('matplotlib.pyplot')\n"
    )
    found = imported_names(source, "lossviz.widgets.chat")
    assert found == [
        (1, "torch.nn"),
        (2, "lossviz.checks"),
        (2, "lossviz.reductions"),
        (3, "lossviz.plots.chat.ChatPicture"),
        (5, "ipywidgets"),
        (6, "matplotlib.pyplot"),
    ]


def test_the_layer_checker_catches_each_kind_of_violation():
    modules = set(_files())
    cases = {
        ("lossviz.plots.reductions", "torch"): "plots import only",
        ("lossviz.plots.reductions", "lossviz.reductions.weights"): "plots import only",
        ("lossviz.plots.chat", "ipywidgets"): "plots import only",
        ("lossviz.widgets.chat", "torch.nn"): "widgets never import torch",
        ("lossviz.widgets.chat", "lossviz.commands.figures"): "nor an app module",
        ("lossviz.reductions", "matplotlib.figure"): "math never imports",
        ("lossviz.chat", "lossviz.plots.chat.ChatPicture"): "math never imports",
        ("lossviz.chat", "lossviz.widgets.base"): "math never imports",
        ("lossviz.chat", "lossviz.trainers.tiny"): "math never imports",
        ("lossviz.reductions", "transformers"): "only under lossviz/trainers/",
        ("lossviz.experiments.sft_training", "trl.trainer"): "only under lossviz/trainers/",
        ("lossviz.widgets.probe", "transformers"): "only under lossviz/trainers/",
        ("lossviz.commands.probe", "transformers"): "only under lossviz/trainers/",
        ("lossviz.commands.audit", "lightning.pytorch"): "only under lossviz/trainers/",
        ("lossviz.trainers.tiny", "lossviz.plots.probe"): "never plots",
        ("lossviz.trainers.tiny", "lossviz.commands"): "never plots",
    }
    for (module, target), rule in cases.items():
        assert rule in (layer_violation(module, _resolve(target, modules)) or ""), (module, target)
    allowed = [
        ("lossviz.plots.probe", "lossviz.plots.reductions.draw_weights"),
        ("lossviz.plots.chat", "numpy"),
        ("lossviz.plots.chat", "collections.abc"),
        ("lossviz.widgets.chat", "lossviz.chat"),
        ("lossviz.widgets.chat", "lossviz.plots.chat"),
        ("lossviz.reductions", "torch"),
        ("lossviz.commands.figures", "matplotlib"),
        ("lossviz.commands.figures", "lossviz.plots.reductions"),
        ("lossviz.commands.probe", "lossviz.trainers.hf_trainer"),
        ("lossviz.trainers.tiny", "transformers"),
        ("lossviz.trainers.hf_trainer", "lossviz.probe"),
        ("lossviz.widgets.probe", "lossviz.trainers.hf_trainer.measure"),
    ]
    for module, target in allowed:
        assert layer_violation(module, _resolve(target, modules)) is None, (module, target)


def test_a_violation_in_a_function_body_is_found(tmp_path):
    """A synthetic plot that imports the math inside a function, as plots/reductions.py once did."""
    source = "import numpy as np\ndef figure(mask):\n    from ..reductions import weights\n"
    modules = set(_files())
    found = [
        (line, t, layer_violation("lossviz.plots.fake", _resolve(t, modules)))
        for line, t in imported_names(source, "lossviz.plots.fake")
    ]
    assert found[0] == (1, "numpy", None)
    assert found[1][:2] == (3, "lossviz.reductions.weights") and "plots import only" in found[1][2]


def test_every_module_keeps_to_its_layer():
    found = layer_violations()
    assert not found, "\n".join(f"{f}:{line} imports {t}: {rule}" for f, line, t, rule in found)


def module_caches(source: str) -> list[str]:
    """Names of the functions in ``source`` decorated with a functools cache (``lru_cache``, ``cache``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                name = getattr(target, "attr", getattr(target, "id", ""))
                if name in ("lru_cache", "cache", "cached_property"):
                    found.append(node.name)
    return found


def test_the_cache_finder_finds_each_spelling():
    source = (
        "import functools\nfrom functools import lru_cache, cache\n"
        "@functools.lru_cache(maxsize=8)\ndef a(): pass\n"
        "@lru_cache\ndef b(): pass\n"
        "@cache\ndef c(): pass\n"
        "def d(): pass\n"
    )
    assert module_caches(source) == ["a", "b", "c"]


def test_no_widget_shares_a_cache_between_explorers():
    found = {
        p.relative_to(PKG.parent).as_posix(): module_caches(p.read_text(encoding="utf-8"))
        for p in sorted((PKG / "widgets").glob("*.py"))
    }
    shared = {f: names for f, names in found.items() if names and f not in KNOWN_SHARED_CACHES}
    assert not shared, f"remember results with canvas.memo (one cache per explorer): {shared}"
    stale = {f for f in KNOWN_SHARED_CACHES if not found.get(f)}
    assert not stale, (
        f"these keep no module-level cache now; remove them from KNOWN_SHARED_CACHES: {stale}"
    )


def test_the_public_surface_is_math_functions_and_submodules():
    """``lv.__all__``: each name a lossviz submodule or a function/constant of the math layer, no
    helper of tests or of one notebook (the gradient helpers live in ``lv.step_gradients``)."""
    import types

    import lossviz as lv

    assert len(lv.__all__) == len(set(lv.__all__)) <= 30  # a surface a reader can hold in mind
    for name in lv.__all__:
        value = getattr(lv, name)
        if isinstance(value, types.ModuleType):
            assert value.__name__ == f"lossviz.{name}", name
            continue
        if callable(value) and hasattr(value, "__module__"):  # a function or a class
            home = value.__module__
        else:  # a constant: the math module that defines it
            home = next(m for m in ("reductions", "accumulation") if name in vars(getattr(lv, m)))
            home = f"lossviz.{home}"
        assert home.startswith("lossviz.") and home.split(".")[1] not in ("plots", "widgets"), name
    for helper in ("token_batch", "flat_grad", "weighted_grad", "gradient_gap", "ExperimentConfig"):
        assert helper not in lv.__all__
    assert lv.step_gradients.token_batch([2]).input_ids.shape == (
        1,
        3,
    )  # still there, in its module
