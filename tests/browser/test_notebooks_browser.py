"""Every notebook, opened in JupyterLab in a real Chromium: Run All, no error anywhere, sliders work.

JupyterLab serves a copy of ``notebooks/`` (so autosave never rewrites the stored outputs) on
127.0.0.1 with a random token. Each notebook is cleared, run with Run All, and checked for error
output; in a notebook with an explorer the first slider is moved with the keyboard and the widget's
picture must change. Screenshots go to ``artifacts/``. The server and every process it started
(kernels included) are stopped at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = REPO / "artifacts"
CHROMIUM = Path(os.environ.get("LOSSVIZ_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
RUN_TIMEOUT_MS = 180_000  # one notebook, Run All to idle (generous on a busy 2-core machine)
# Lab settings for the test: every cell stays in the DOM (no windowing), no news or update checks.
# Nothing about kernels: a notebook must start its own kernel as it does under `make lab`.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
# Run All is over when the kernel is idle and every code cell has a number, or as soon as a cell
# failed (JupyterLab then leaves the cells after it unrun) or a dialog blocks the page.
ALL_RUN_JS = """() => {
  if (document.querySelector('.jp-Dialog')) return true;
  const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
  if (!status || status.dataset.status !== 'idle') return false;
  const stderr = [...document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')];
  if (stderr.some(o => /Traceback|\\w+Error\\b/.test(o.textContent))) return true;
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout} s")


def _stop(proc: subprocess.Popen) -> list[psutil.Process]:
    """SIGTERM jupyter (it shuts its kernels down), then kill whatever it started that is left."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    _, alive = psutil.wait_procs(family, timeout=10)
    for p in alive:
        p.kill()
    _, alive = psutil.wait_procs(alive, timeout=10)
    return alive


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's package "
            "(apt-get install -y chromium) or set LOSSVIZ_CHROMIUM; never `playwright install`"
        )
    root = tmp_path_factory.mktemp("lab")
    served = root / "notebooks"
    shutil.copytree(REPO / "notebooks", served, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = root / "settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    jupyter = Path(sys.executable).with_name("jupyter")
    log = (root / "jupyter.log").open("w")
    proc = subprocess.Popen(
        [
            str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--ServerApp.token={token}", f"--ServerApp.root_dir={served}",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={root / 'ws'}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the kernel's real state
        ]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        cwd=served,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        try:
            _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", proc)
        except (RuntimeError, TimeoutError) as err:
            log.flush()
            tail = (root / "jupyter.log").read_text()[-3000:]
            pytest.fail(f"{err}; its log ends with:\n{tail}")
        yield {
            "base": f"http://127.0.0.1:{port}",
            "token": token,
            "pid": proc.pid,
            "log": root / "jupyter.log",
        }
    finally:
        left = _stop(proc)
        log.close()
        assert not left, f"processes left behind by jupyter: {[p.pid for p in left]}"


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def _errors(page) -> list[str]:
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    texts = [t for t in stderr.all_inner_texts() if "Traceback" in t or "Error" in t]
    widget = page.locator(".widget-output").all_inner_texts()
    texts += [t for t in widget if "Something went wrong" in t or "not valid" in t]
    return texts


def _shutdown_kernels(lab) -> None:
    """Stop this notebook's kernel before the next one starts: ten idle kernels cost memory and CPU."""
    api = f"{lab['base']}/api/kernels"
    headers = {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(api, headers=headers), timeout=10) as resp:
        kernels = json.load(resp)
    for kernel in kernels:
        req = urllib.request.Request(f"{api}/{kernel['id']}", method="DELETE", headers=headers)
        urllib.request.urlopen(req, timeout=30).close()


def test_notebooks_are_found():
    assert len(NOTEBOOKS) >= 3, "expected the numbered notebooks in notebooks/"


def test_a_notebook_opens_with_its_kernel_and_no_dialog(lab, page):
    """What a learner sees after `make lab`: a fresh workspace, the notebook's own kernel, idle."""
    notebook = NOTEBOOKS[0]
    page.goto(f"{lab['base']}/lab/tree/{notebook.name}?token={lab['token']}&reset")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    _wait_for(page, lab, notebook, _kernel_ready, "no connected, idle kernel", 120)
    state = page.evaluate(STATE_JS)
    assert not page.locator(".jp-Dialog").count() and _kernel_ready(state), state
    _shutdown_kernels(lab)


def _has_explorer(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text())["cells"]
    return any("_explorer(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


# The page's kernel and cells, read through window.jupyterapp (lab runs with expose_app_in_browser).
STATE_JS = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = panel && panel.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
    .map(p => p.textContent.trim());
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return {
    indicator: indicator ? indicator.dataset.status : null,
    ready: ctx ? ctx.isReady : null,
    kernel: kernel ? kernel.status + '/' + kernel.connectionStatus : null,
    done: prompts.filter(t => /\\[\\d+\\]/.test(t)).length,
    running_or_queued: prompts.filter(t => t.includes('[*]')).length,
    not_run: prompts.filter(t => !/\\[(\\d+|\\*)\\]/.test(t)).length,
    dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 200)),
  };
}"""


def _diagnose(page, lab, what: str) -> str:
    """What the page and the server looked like when ``what`` did not happen (for the CI log)."""
    try:
        state = page.evaluate(STATE_JS)
    except Exception as err:  # the page itself may be gone
        state = f"page state unavailable: {err}"
    log = lab["log"].read_text()[-2000:] if lab["log"].exists() else "(no jupyter log)"
    return f"{what}\npage: {state}\njupyter log ends with:\n{log}"


def _kernel_ready(state: dict) -> bool:
    return bool(state["ready"]) and state["kernel"] == "idle/connected"


def _run_started(state: dict) -> bool:
    return state["done"] + state["running_or_queued"] > 0


def _wait_for(page, lab, notebook: Path, until, what: str, timeout: float) -> None:
    """Poll the page's state until ``until(state)``; a dialog (e.g. "Select Kernel") fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until(page.evaluate(STATE_JS)):
            return
        dialogs = page.locator(".jp-Dialog").all_inner_texts()
        assert not dialogs, f"{notebook.name}: a dialog appeared: {dialogs}"
        time.sleep(0.25)
    pytest.fail(_diagnose(page, lab, f"{notebook.name}: {what} within {timeout:.0f} s"))


def _run_all(page, lab, notebook: Path) -> None:
    """Open the notebook, wait for a connected idle kernel, clear it, Run All, wait for the end.

    Run All is sent only once the kernel is connected and idle: sent while the kernel of a lab that
    has just started is still coming up, JupyterLab can drop the cells unrun. Should no cell start
    within a minute even so, Run All is sent again (at most twice more).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{lab['base']}/lab/tree/{notebook.name}?token={lab['token']}&reset")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    _wait_for(page, lab, notebook, _kernel_ready, "no connected, idle kernel", 120)
    _menu(page, "Edit", "Clear Outputs of All Cells")
    _wait_for(page, lab, notebook, lambda state: state["done"] == 0, "outputs not cleared", 30)
    for attempt in range(3):
        _menu(page, "Run", "Run All Cells")
        try:
            what = f"Run All (sent {attempt + 1} times) started no cell"
            _wait_for(page, lab, notebook, _run_started, what, 60)
            break
        except pytest.fail.Exception:
            if attempt == 2:
                raise
            _wait_for(page, lab, notebook, _kernel_ready, "no connected, idle kernel", 60)
    try:
        page.wait_for_function(ALL_RUN_JS, timeout=RUN_TIMEOUT_MS, polling=500)
    except PlaywrightTimeout:
        pytest.fail(_diagnose(page, lab, f"{notebook.name}: Run All did not finish in 180 s"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_run_all_without_errors(lab, page, notebook):
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _run_all(page, lab, notebook)
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
                _run_all(page, lab, notebook)
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
