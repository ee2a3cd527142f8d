"""Painted latency of every explorer in JupyterLab + Chromium: one JSON line per explorer.

Each notebook with an explorer is opened in a real JupyterLab (``tests/browser/lab_harness.py``),
run with Run All, and every visible slider of its explorer is stepped with the arrow keys. A step
is timed in the page from the key press to the frame in which the explorer's new picture is
painted: the output's ``<img>`` gets a new ``src``, the image is decoded, and a
``requestAnimationFrame`` callback runs. That is what a learner waits for (kernel round trip,
compute, PNG, transfer, decode, paint). A step that leaves the picture unchanged within 3 s (a
parameter the chosen mode ignores) is counted but not timed. Target: p95 <= 100 ms.
Screenshots of each explorer go to ``artifacts/<label>/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))
from lab_harness import browser_page, run_all, running_lab, shutdown_kernels  # noqa: E402

from lossviz.widgets.latency import p95  # noqa: E402

TARGET_P95_MS = 100
# Arms the timer: t0 at the key press (capture phase, before the slider sees it), t1 in the first
# animation frame after the output's picture changed and decoded. Resolves with t1 - t0 (ms), or
# null if the picture did not change within the timeout.
ARM_JS = """([index, timeoutMs]) => new Promise(resolve => {
  const out = document.querySelectorAll('.widget-output')[index];
  const before = (out.querySelector('img') || {}).src || '';
  let t0 = null, done = false;
  const finish = value => { if (!done) { done = true; observer.disconnect(); resolve(value); } };
  const start = () => { if (t0 === null) t0 = performance.now(); };
  document.addEventListener('keydown', start, {capture: true, once: true});
  document.addEventListener('input', start, {capture: true, once: true});  // a dropdown pick
  const observer = new MutationObserver(() => {
    const img = out.querySelector('img');
    if (!img || img.src === before || t0 === null) return;
    observer.disconnect();
    img.decode().catch(() => null).then(() =>
      requestAnimationFrame(() => finish(performance.now() - t0)));
  });
  observer.observe(out, {subtree: true, childList: true, attributes: true});
  setTimeout(() => finish(null), timeoutMs);
  window.__latencyArmed = true;
})"""
SELECTS_JS = """index => {
  const out = document.querySelectorAll('.widget-output')[index];
  return [...out.parentElement.querySelectorAll('.widget-dropdown select')]
    .map((s, i) => ({i, visible: s.offsetParent !== null && !s.disabled,
                     now: s.selectedIndex, max: s.options.length - 1}));
}"""
HANDLES_JS = """index => {
  const out = document.querySelectorAll('.widget-output')[index];
  const box = out.parentElement;
  return [...box.querySelectorAll('.widget-slider .noUi-handle')]
    .map((h, i) => ({i, visible: h.offsetParent !== null,
                     now: +h.getAttribute('aria-valuenow'),
                     min: +h.getAttribute('aria-valuemin'), max: +h.getAttribute('aria-valuemax')}));
}"""


def notebooks_with_explorers(patterns: str) -> list[tuple[Path, str]]:
    """(notebook, its explorer) for each notebook matched by one of the comma-separated globs."""
    found = []
    paths = {nb for p in patterns.split(",") for nb in (REPO / "notebooks").glob(p.strip())}
    for nb in sorted(paths):
        cells = json.loads(nb.read_text())["cells"]
        names = {
            word.split("(")[0].split(".")[-1]
            for c in cells
            if c["cell_type"] == "code"
            for word in "".join(c["source"]).split()
            if "_explorer(" in word
        }
        if names:
            found.append((nb, sorted(names)[0]))
    return found


def _timed(page, act) -> float | None:
    """Milliseconds from ``act()`` (a key press or a dropdown pick) to the painted picture."""
    page.wait_for_timeout(150)  # let the previous update settle
    page.evaluate_handle("a => { window.__p = (" + ARM_JS + ")(a); }", [0, 3000]).dispose()
    act()
    return page.evaluate("() => window.__p")


def step_times(page, steps_per_control: int) -> tuple[list[float], int]:
    """Press each visible slider's arrow keys; milliseconds per painted step, and unchanged steps.

    An explorer whose sliders leave the picture as it is (a parameter its default mode ignores)
    or that has none (a choice among cached runs) is stepped through its dropdowns instead, each
    pick made as a learner's click makes it.
    """
    box = page.locator(".widget-output").first.locator("xpath=..")
    handles = box.locator(".widget-slider .noUi-handle")
    steps = []  # milliseconds, or None where the picture did not change
    for info in page.evaluate(HANDLES_JS, 0):
        if not info["visible"]:
            continue
        handle = handles.nth(info["i"])
        handle.scroll_into_view_if_needed()
        handle.focus()
        room_up = info["max"] > info["now"]
        keys = ["ArrowRight" if room_up else "ArrowLeft"] * steps_per_control
        keys += ["ArrowLeft" if room_up else "ArrowRight"] * steps_per_control  # back again
        steps += [_timed(page, lambda h=handle, k=key: h.press(k)) for key in keys]
    if not any(ms is not None for ms in steps):
        selects = box.locator(".widget-dropdown select")
        for info in page.evaluate(SELECTS_JS, 0):
            if not info["visible"]:
                continue
            select = selects.nth(info["i"])
            select.scroll_into_view_if_needed()
            start = info["now"]
            order = list(range(info["max"] + 1))[: steps_per_control + 1]
            for index in [i for i in order if i != start] + [start]:
                steps.append(_timed(page, lambda s=select, i=index: s.select_option(index=i)))
    times = [ms for ms in steps if ms is not None]
    return times, len(steps) - len(times)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--notebooks",
        default="[0-9][0-9]*.ipynb",
        help="glob of notebooks/ to measure; several, comma-separated, run in one session "
        "(e.g. a reference explorer beside the ones under test: '02_*,11_*,14_*')",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=3,
        help="arrow-key presses per slider (or dropdown) and direction",
    )
    parser.add_argument(
        "--label", default="latest", help="screenshots go to artifacts/<label>/ (git-ignored)"
    )
    args = parser.parse_args(argv)
    shots = REPO / "artifacts" / args.label
    shots.mkdir(parents=True, exist_ok=True)
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_lab(Path(tmp)) as lab,
        browser_page() as page,
    ):
        for notebook, explorer in tqdm(notebooks_with_explorers(args.notebooks), desc="explorers"):
            error = None
            times, unchanged = [], 0
            try:
                run_all(page, lab, notebook)
                page.locator(".widget-output img").first.wait_for(timeout=60_000)
                box = page.locator(".widget-output").first.locator("xpath=..")
                box.scroll_into_view_if_needed()
                box.screenshot(path=str(shots / f"{notebook.stem}.png"))
                times, unchanged = step_times(page, args.steps)
            except Exception as err:  # one notebook's failure is reported, the others measured
                error = f"{type(err).__name__}: {str(err)[:300]}"
                page.screenshot(path=str(shots / f"{notebook.stem}_failed.png"), full_page=True)
            finally:
                shutdown_kernels(lab)
            row = {
                "benchmark": "browser_painted_step",
                "notebook": notebook.stem,
                "explorer": explorer,
                "steps": len(times),
                "unchanged_steps": unchanged,
                "median_ms": round(statistics.median(times), 1) if times else None,
                "p95_ms": round(p95(times), 1) if times else None,
                "max_ms": round(max(times), 1) if times else None,
                "target_p95_ms": TARGET_P95_MS,
                "meets_target": bool(times) and p95(times) <= TARGET_P95_MS,
                "load_average_1min": round(os.getloadavg()[0], 2),
                "times_ms": [round(t, 1) for t in times],  # in the order the steps were taken
            }
            if error:
                row["error"] = error
            tqdm.write(json.dumps(row))
            results.append(row)
    return results


if __name__ == "__main__":
    main()
