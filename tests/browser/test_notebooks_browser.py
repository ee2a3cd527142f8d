"""Every notebook, opened in JupyterLab in a real Chromium: Run All, no error anywhere, sliders work.

JupyterLab serves a copy of ``notebooks/`` (so autosave never rewrites the stored outputs) on
127.0.0.1 with a random token. Each notebook is cleared, run with Run All, and checked for error
output; in a notebook with an explorer the first slider is moved with the keyboard and the widget's
picture must change. Screenshots go to ``artifacts/``. The server and every process it started
(kernels included) are stopped at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab_harness import (
    REPO,
    STATE_JS,
    LabError,
    browser_page,
    kernel_ready,
    run_all,
    running_lab,
    shutdown_kernels,
    wait_for,
)

pytestmark = pytest.mark.browser

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]*.ipynb"))
ARTIFACTS = REPO / "artifacts"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        with running_lab(tmp_path_factory.mktemp("lab")) as lab:
            yield lab
    except LabError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as page:
        yield page


def _errors(page) -> list[str]:
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    texts = [t for t in stderr.all_inner_texts() if "Traceback" in t or "Error" in t]
    widget = page.locator(".widget-output").all_inner_texts()
    texts += [t for t in widget if "Something went wrong" in t or "not valid" in t]
    return texts


def _shutdown_kernels(lab) -> None:
    shutdown_kernels(lab)


def test_notebooks_are_found():
    assert len(NOTEBOOKS) >= 3, "expected the numbered notebooks in notebooks/"


def test_a_notebook_opens_with_its_kernel_and_no_dialog(lab, page):
    """What a learner sees after `make lab`: a fresh workspace, the notebook's own kernel, idle."""
    notebook = NOTEBOOKS[0]
    page.goto(f"{lab['base']}/lab/tree/{notebook.name}?token={lab['token']}&reset")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    wait_for(page, lab, notebook, kernel_ready, "no connected, idle kernel", 120)
    state = page.evaluate(STATE_JS)
    assert not page.locator(".jp-Dialog").count() and kernel_ready(state), state
    _shutdown_kernels(lab)


def _has_explorer(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text())["cells"]
    return any("_explorer(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_run_all_without_errors(lab, page, notebook):
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        run_all(page, lab, notebook)
        page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}.png"), full_page=True)
        dialogs = page.locator(".jp-Dialog").all_inner_texts()
        assert not dialogs, f"{notebook.name}: a dialog blocks the run: {dialogs}"
        errors = _errors(page)
        assert not errors, f"{notebook.name} shows error output:\n" + "\n---\n".join(errors)
        if _has_explorer(notebook):
            if not _widget_shown(page):
                # a lab that has just started may paint the very first widget as plain text
                # before its widget manager is ready: run the notebook once more, then insist
                _shutdown_kernels(lab)
                run_all(page, lab, notebook)
            assert _widget_shown(page), (
                f"{notebook.name}: the explorer was not rendered as a widget"
            )
            _move_a_control(page, notebook)
    except (Exception, pytest.fail.Exception):
        page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}_failed.png"))
        raise
    finally:
        _shutdown_kernels(lab)


def _widget_shown(page) -> bool:
    try:
        page.locator(".widget-output").first.wait_for(state="attached", timeout=30_000)
        return True
    except Exception:  # playwright's TimeoutError
        return False


OUTPUT_HTML_JS = "() => document.querySelector('.widget-output').innerHTML"


def _move_a_control(page, notebook: Path) -> None:
    """Move the first slider, then (if the picture did not change) pick another dropdown entry."""
    output = page.locator(".widget-output").first
    output.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => document.querySelector('.widget-output').innerHTML.length > 0", timeout=30_000
    )
    before = page.evaluate(OUTPUT_HTML_JS)
    changed = False
    for move in (_press_slider, _pick_dropdown):
        if not move(page):
            continue
        try:  # a slider may leave the picture as it was (a parameter the chosen mode ignores)
            page.wait_for_function(
                "html => document.querySelector('.widget-output').innerHTML !== html",
                arg=before,
                timeout=30_000,
            )
            changed = True
            break
        except Exception:  # playwright's TimeoutError: try the next kind of control
            continue
    assert changed, f"{notebook.name}: no control changed the explorer's output"
    output.screenshot(path=str(ARTIFACTS / f"{notebook.stem}_explorer_moved.png"))
    assert not _errors(page), f"{notebook.name}: moving a control produced an error"


def _press_slider(page) -> bool:
    if not page.locator(".widget-slider .noUi-handle").count():
        return False
    readout = page.locator(".widget-readout").first.inner_text()
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('.widget-readout').innerText !== " + json.dumps(readout),
        timeout=30_000,
    )
    return True


def _pick_dropdown(page) -> bool:
    if not page.locator(".widget-dropdown select").count():
        return False
    select = page.locator(".widget-dropdown select").first
    select.scroll_into_view_if_needed()
    options = select.locator("option").all_inner_texts()
    current = select.evaluate("s => s.options[s.selectedIndex].text")
    select.select_option(label=next(o for o in options if o != current))
    return True
