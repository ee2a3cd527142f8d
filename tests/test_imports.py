"""The package's modules import each other without cycles (read from the source, every import level)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "lossviz"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """lossviz modules that ``path`` imports anywhere in it (function bodies included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules}
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    """Module -> the lossviz modules it imports; package ``__init__`` files are left out (they
    gather the public names, so they import everything below them by design)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    modules = set(files)
    return {
        name: _imports(path, modules) - {m for m in modules if files[m].name == "__init__.py"}
        for name, path in files.items()
        if path.name != "__init__.py"
    }


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
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
