"""The course's path: every notebook listed in the README and in 00, each states its reading time and
prerequisites, the times agree everywhere, and the core path fits in two hours."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
START = NOTEBOOKS / "00_start_here.ipynb"
CORE_LIMIT_MIN = 120

TIME = re.compile(r"(?i)reading time\W*(?:about\s+|~\s*)?(\d+)\s*min")
PREREQ = re.compile(r"(?i)\bprerequisites?\b")
ROW = re.compile(
    r"^\|\s*\[[^\]]+\]\((?:notebooks/)?([^)]+\.ipynb)\)\s*\|[^|]*\|\s*(\d+)\s*min\s*\|([^|]*)\|"
)
TOTAL = re.compile(r"(?i)core path\W*(?:\(|:)?\s*about\s+(\d+)\s*min")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _markdown(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "markdown")


def _section(text: str, heading: str, stop: str) -> str:
    start = text.index(heading)
    end = text.find(stop, start + len(heading))
    return text[start : end if end >= 0 else len(text)]


def _rows(text: str) -> dict[str, tuple[int, str]]:
    """Notebook file -> (minutes, prerequisites) for every table row that links a notebook."""
    rows = {}
    for line in text.splitlines():
        if m := ROW.match(line.strip()):
            assert m.group(1) not in rows, f"{m.group(1)} is listed twice"
            rows[m.group(1)] = (int(m.group(2)), m.group(3).strip())
    return rows


def _start_tables() -> tuple[dict, dict]:
    text = _markdown(START)
    core = _rows(_section(text, "## The core path", "## Deep dives"))
    deep = _rows(_section(text, "## Deep dives", "## The notation"))
    return core, deep


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_tables() -> tuple[dict, dict]:
    text = _section(_readme(), "## The notebooks", "### The notation")
    core = _rows(_section(text, "**Core path**", "**Deep dives**"))
    deep = _rows(_section(text, "**Deep dives**", "RL names"))
    return core, deep


def _own_time(path: Path) -> int:
    first = "".join(_cells(path)[0]["source"])
    m = TIME.search(first)
    assert m, (
        f"{path.name}: the first cell must state a reading time ('**Reading time:** about N min')"
    )
    return int(m.group(1))


def _files() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_parsers_read_a_table_row():
    row = "| [02 · Reductions](02_reductions_and_padding.ipynb) | write `W` | 18 min | 01 |"
    assert _rows(row) == {"02_reductions_and_padding.ipynb": (18, "01")}
    assert _rows("| [x](notebooks/x.ipynb) | a | 7 min | none |") == {"x.ipynb": (7, "none")}
    assert _rows("| [x](x.ipynb) | a | soon | none |") == {}
    assert TIME.search("**Reading time:** about 25 min with the prompts").group(1) == "25"


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.stem)
def test_every_notebook_states_its_reading_time_and_prerequisites_first(path):
    first = _cells(path)[0]
    assert first["cell_type"] == "markdown", f"{path.name}: the first cell must be markdown"
    text = "".join(first["source"])
    assert 0 < _own_time(path) <= 60, f"{path.name}: a reading time of 1 to 60 min"
    assert PREREQ.search(text), f"{path.name}: the first cell must name its prerequisites"


def test_every_notebook_is_listed_in_00_and_in_the_readme():
    files = {p.name for p in _files()}
    start = {**_start_tables()[0], **_start_tables()[1]}
    core, deep = _readme_tables()
    readme = {**core, **deep}
    assert files - set(start) == set(), "notebooks missing from 00's tables"
    assert files - set(readme) == set(), "notebooks missing from the README's notebook tables"
    assert set(core) & set(deep) == set()


def test_every_listed_notebook_exists():
    core, deep = _start_tables()
    missing = sorted(name for name in {**core, **deep} if not (NOTEBOOKS / name).exists())
    assert missing == [], f"00 and the README link notebooks that are not there: {missing}"


def test_00_and_the_readme_list_the_same_path_with_the_same_times():
    assert _start_tables() == _readme_tables()


def test_each_listed_time_is_the_notebooks_own():
    core, deep = _start_tables()
    for name, (minutes, _) in {**core, **deep}.items():
        path = NOTEBOOKS / name
        if path.exists():  # a missing file fails test_every_listed_notebook_exists
            own = _own_time(path)
            assert own == minutes, f"{name}: 00 says {minutes} min, the notebook {own}"


def test_the_core_path_fits_in_two_hours_and_its_stated_total_is_the_sum():
    core, _ = _start_tables()
    total = sum(minutes for minutes, _ in core.values())
    assert total <= CORE_LIMIT_MIN, f"the core path takes {total} min, over {CORE_LIMIT_MIN}"
    for where, text in (("00", _markdown(START)), ("README", _readme())):
        m = TOTAL.search(text)
        assert m, f"{where} must state the core path's total ('core path ... about N min')"
        assert int(m.group(1)) == total, (
            f"{where} says {m.group(1)} min, the rows add up to {total}"
        )
    assert "00_start_here.ipynb" in core and "01_cross_entropy_by_hand.ipynb" in core


def test_a_core_notebook_needs_only_core_notebooks():
    core, _ = _start_tables()
    numbers = {name.split("_")[0] for name in core}
    for name, (_, prereq) in core.items():
        for needed in re.findall(r"\b\d\d[a-z]?\b", prereq):
            assert needed in numbers, f"core notebook {name} needs {needed}, a deep dive"


def test_00_and_the_readme_print_the_same_notation_table():
    def table(text):
        start = text.index("| symbol | meaning |")
        lines = text[start:].splitlines()
        return [
            line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("|"))]
        ]

    ours, readme = table(_markdown(START)), table(_readme())
    assert ours == readme and len(ours) >= 20
    symbols = [line.split("|")[1].strip() for line in ours[2:]]
    for s in (
        "`B`",
        "`T`",
        "`N`",
        "`n_b`",
        "`W[b,t]`",
        "`K`",
        "`R`",
        "`G`",
        "`A_b`",
        "`A·W·g(r)`",
    ):
        assert s in symbols
    assert "non-negative" in ours[symbols.index("`W[b,t]`") + 2]
