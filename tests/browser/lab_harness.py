"""Start JupyterLab on a copy of ``notebooks/`` and a Chromium beside it, and stop both cleanly.

Shared by the browser tests and ``benchmarks/browser_latency.py``: the server serves a copy (so
autosave never rewrites the stored outputs) on 127.0.0.1 with a random token; on exit jupyter gets
SIGTERM (it shuts its kernels down) and whatever it started that is still alive is killed.
Chromium is Debian's (``/usr/bin/chromium`` or ``LOSSVIZ_CHROMIUM``), never ``playwright install``.
"""

from __future__ import annotations

import contextlib
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

REPO = Path(__file__).resolve().parents[2]
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
# Lab settings: every cell stays in the DOM (no windowing), no news or update checks.
# Nothing about kernels: a notebook must start its own kernel as it does under `make lab`.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


class LabError(RuntimeError):
    """JupyterLab or Chromium did not start, or left processes behind."""


def chromium_or_error() -> Path:
    """The Chromium binary, or a :class:`LabError` that says how to install it."""
    if not CHROMIUM.exists():
        raise LabError(
            f"Chromium not found at {CHROMIUM}: install Debian's package "
            "(apt-get install -y chromium) or set LOSSVIZ_CHROMIUM; never `playwright install`"
        )
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"jupyter lab exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise LabError(f"jupyter lab did not answer {url} within {timeout} s")


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


@contextlib.contextmanager
def running_lab(root: Path):
    """JupyterLab serving a copy of ``notebooks/`` under ``root``; yields base, token, pid, log."""
    chromium_or_error()
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
        except LabError as err:
            log.flush()
            tail = (root / "jupyter.log").read_text()[-3000:]
            raise LabError(f"{err}; its log ends with:\n{tail}") from None
        yield {
            "base": f"http://127.0.0.1:{port}",
            "token": token,
            "pid": proc.pid,
            "log": root / "jupyter.log",
        }
    finally:
        left = _stop(proc)
        log.close()
        if left:
            raise LabError(f"processes left behind by jupyter: {[p.pid for p in left]}")


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    """A Playwright page in Debian's Chromium; the browser is closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_or_error()), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def shutdown_kernels(lab: dict) -> None:
    """Stop every kernel of the server: idle kernels of earlier notebooks cost memory and CPU."""
    api = f"{lab['base']}/api/kernels"
    headers = {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(api, headers=headers), timeout=10) as resp:
        kernels = json.load(resp)
    for kernel in kernels:
        req = urllib.request.Request(f"{api}/{kernel['id']}", method="DELETE", headers=headers)
        urllib.request.urlopen(req, timeout=30).close()


RUN_TIMEOUT_MS = 180_000  # one notebook, Run All to idle (generous on a busy 2-core machine)
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


def menu(page, name: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=name).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


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


def diagnose(page, lab, what: str) -> str:
    """What the page and the server looked like when ``what`` did not happen (for the CI log)."""
    try:
        state = page.evaluate(STATE_JS)
    except Exception as err:  # the page itself may be gone
        state = f"page state unavailable: {err}"
    log = lab["log"].read_text()[-2000:] if lab["log"].exists() else "(no jupyter log)"
    return f"{what}\npage: {state}\njupyter log ends with:\n{log}"


def kernel_ready(state: dict) -> bool:
    return bool(state["ready"]) and state["kernel"] == "idle/connected"


def run_started(state: dict) -> bool:
    return state["done"] + state["running_or_queued"] > 0


def wait_for(page, lab, notebook: Path, until, what: str, timeout: float) -> None:
    """Poll the page's state until ``until(state)``; a dialog (e.g. "Select Kernel") fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until(page.evaluate(STATE_JS)):
            return
        dialogs = page.locator(".jp-Dialog").all_inner_texts()
        assert not dialogs, f"{notebook.name}: a dialog appeared: {dialogs}"
        time.sleep(0.25)
    raise LabError(diagnose(page, lab, f"{notebook.name}: {what} within {timeout:.0f} s"))


def run_all(page, lab, notebook: Path) -> None:
    """Open the notebook, wait for a connected idle kernel, clear it, Run All, wait for the end.

    Run All is sent only once the kernel is connected and idle: sent while the kernel of a lab that
    has just started is still coming up, JupyterLab can drop the cells unrun. Should no cell start
    within a minute even so, Run All is sent again (at most twice more).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{lab['base']}/lab/tree/{notebook.name}?token={lab['token']}&reset")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    wait_for(page, lab, notebook, kernel_ready, "no connected, idle kernel", 120)
    menu(page, "Edit", "Clear Outputs of All Cells")
    wait_for(page, lab, notebook, lambda state: state["done"] == 0, "outputs not cleared", 30)
    for attempt in range(3):
        menu(page, "Run", "Run All Cells")
        try:
            what = f"Run All (sent {attempt + 1} times) started no cell"
            wait_for(page, lab, notebook, run_started, what, 60)
            break
        except LabError:
            if attempt == 2:
                raise
            wait_for(page, lab, notebook, kernel_ready, "no connected, idle kernel", 60)
    try:
        page.wait_for_function(ALL_RUN_JS, timeout=RUN_TIMEOUT_MS, polling=500)
    except PlaywrightTimeout:
        what = f"{notebook.name}: Run All did not finish in 180 s"
        raise LabError(diagnose(page, lab, what)) from None
