"""Notebooks 08 and 09 in a real JupyterLab + Chromium: Run All, then move a control and see it redraw."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TOKEN = "lossviz-browser-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving copies of the two notebooks (Run All must not touch the repository's files)."""
    folder = tmp_path_factory.mktemp("nb")
    for name in ("08_devices_and_precision.ipynb", "09_rl_loss_aggregation.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, folder / name)
    port = _free_port()
    jupyter = Path(sys.executable).with_name("jupyter")
    proc = subprocess.Popen(
        [
            str(jupyter),
            "lab",
            "--no-browser",
            "--allow-root",  # CI containers run as root; harmless otherwise
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.token={TOKEN}",
            f"--ServerApp.root_dir={folder}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("JupyterLab did not start within 60 s")
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _run_all(page, url):
    page.goto(url)
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    select = page.locator(".jp-Dialog button", has_text="Select")
    try:  # JupyterLab may ask which kernel to start; take the default (this venv's python3)
        select.wait_for(timeout=15_000)
        select.click()
    except Exception:  # noqa: BLE001 - no dialog: the kernel started on its own
        pass
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


OUT = ".widget-output .jp-RenderedText"


def _wait_for_output(page, *selectors):
    # JupyterLab 4 skips painting off-screen cells, so wait for the node to exist, then scroll to it
    for sel in selectors:
        page.wait_for_selector(sel, state="attached", timeout=180_000)
    page.locator(OUT).first.scroll_into_view_if_needed()


def _output_text(page) -> str:
    return page.locator(OUT).first.text_content()


def test_precision_explorer_redraws_when_the_slider_moves(lab, browser):
    page = browser.new_page()
    _run_all(
        page, f"{lab}/lab/workspaces/w08/tree/08_devices_and_precision.ipynb?reset&token={TOKEN}"
    )
    _wait_for_output(page, OUT, ".widget-output .jp-RenderedImage img")
    before = _output_text(page)
    assert "float16" in before and "overflows to inf" in before
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(6):
        handle.press("ArrowRight")
    page.wait_for_function(
        "t => document.querySelector('.widget-output .jp-RenderedText').textContent !== t",
        arg=before,
        timeout=60_000,
    )
    after = _output_text(page)
    assert after.startswith("n = ") and after.splitlines()[0] != before.splitlines()[0]
    assert "Traceback" not in page.content()
    page.close()


def test_rl_explorer_switches_mode(lab, browser):
    page = browser.new_page()
    _run_all(
        page, f"{lab}/lab/workspaces/w09/tree/09_rl_loss_aggregation.ipynb?reset&token={TOKEN}"
    )
    _wait_for_output(page, OUT)
    assert "loss_type=grpo" in _output_text(page)
    select = page.locator(".widget-dropdown select").first
    select.scroll_into_view_if_needed()
    select.select_option("trl:dapo")
    page.wait_for_function(
        "() => document.querySelector('.widget-output .jp-RenderedText').textContent"
        ".includes('loss_type=dapo')",
        timeout=60_000,
    )
    assert "token_mean" in _output_text(page)
    assert "Traceback" not in page.content()
    page.close()
