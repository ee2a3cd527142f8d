"""The notebooks teach the subject, never our repository: no internals in what a learner reads.

A learner has never seen this repository: test files, make targets, virtual-environment paths,
variable names of pins or a changelog voice mean nothing to them. Tooling lives in cell tags
(``nbval-ignore-output``), not in visible comments.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

INTERNALS = {
    "a test file": r"\btests?/\w+|\btest_\w+\.py\b",
    "a make target": r"`make \w|\bmake (test|lab|figures|benchmarks|version-table)\b",
    "a virtual-environment path": r"\.venv\b|site-packages",
    "an install recipe for our side folders": r"pip install --target",
    "a pin's variable name": r"\bPINNED\b|\bVERL_VERSION\b|\bRETRAIN_TOLERANCE\b",
    "a changelog voice": (
        r"this suite (used to|earlier|once)|\bwas wrong here\b|\bwe ran\b|"
        r"\b2-core\b|\bour (tests|repository|CI)\b"
    ),
    "a path inside the package": r"\blossviz/[\w/]+\.(py|json)\b",
}
TOOLING_COMMENTS = r"#\s*(NBVAL_\w+|noqa\b|type:\s*ignore|fmt:\s*(off|on))"


def internals(text: str) -> list[tuple[str, str]]:
    """``(kind, matched text)`` for every internal the text names."""
    return [(kind, m.group(0)) for kind, rx in INTERNALS.items() for m in re.finditer(rx, text)]


def test_the_checker_catches_each_kind_and_passes_plain_prose():
    bad = (
        "Checked in tests/test_pitfalls.py; run `make test`; verl lives in .venv/verl after "
        "pip install --target; PINNED is 5.24; this suite used to say so; see lossviz/data/x.json"
    )
    kinds = {k for k, _ in internals(bad)}
    assert kinds == set(INTERNALS)
    good = (
        "transformers 5.24.0 divides by `num_items_in_batch`; a test of the model makes the "
        "tokens trainable; `lossviz probe --json` prints the weights (see the sources below)."
    )
    assert internals(good) == []
    assert re.search(TOOLING_COMMENTS, "x = 1  # noqa: E731")
    assert re.search(TOOLING_COMMENTS, "# NBVAL_IGNORE_OUTPUT\nexplorer()")
    assert not re.search(TOOLING_COMMENTS, "# the mean over tokens")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_internals_in_the_prose(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = [
        (i, kind, text)
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for kind, text in internals("".join(cell["source"]))
    ]
    assert not found, "\n".join(f"{path.name} cell {i}: {k}: {t!r}" for i, k, t in found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_tooling_comments_in_the_code(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = [
        (i, m.group(0))
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code"
        for m in re.finditer(TOOLING_COMMENTS, "".join(cell["source"]))
    ]
    assert not found, (
        f"{path.name}: {found}: a learner sees these; use the cell tag nbval-ignore-output "
        "and code that needs no lint exception"
    )
