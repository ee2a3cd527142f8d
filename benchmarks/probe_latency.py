"""Per-update latency of the probe explorer (case, lengths, batch, GA) and the pitfall explorer.

Every new setting of the probe explorer is one real transformers ``Trainer`` step, run in a
background thread: the update itself paints a placeholder (the measured panel grey, "Trainer step
running"), and the measured picture follows when the step ends. The first lines time the batch
and GA slider steps of a fresh explorer (every step a new setting): the update a learner waits
for (wall and CPU time), then the time until the measured picture is painted; the next line the
same steps again (runs remembered: blitting only). The last lines time the pitfall explorer (no
Trainer: lossviz's models), every slider and setup stepped.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report, report_cpu  # noqa: E402

from lossviz.widgets.latency import p95  # noqa: E402
from lossviz.widgets.pitfalls import pitfall_explorer  # noqa: E402
from lossviz.widgets.probe import probe_explorer  # noqa: E402

# the browser benchmark's steps: batch up and down with GA 4, then GA down and up with batch 1
STEPS = [{"batch": b} for b in (2, 3, 4, 3, 2, 1)] + [{"ga": g} for g in (3, 2, 1, 2, 3, 4)]
CASES = [{"case": c} for c in ("naive", "compute_loss", "packed", "ga")]
PITFALL_STEPS = (
    [{"batch": b} for b in (2, 3, 4, 3, 2, 1)]
    + [{"ga": g} for g in (3, 4, 3, 2, 1, 2)]
    + [{"world": w} for w in (3, 4, 3, 2, 1, 2)]
)


def until_measured(name: str, settings: list[dict]) -> None:
    """Wall seconds from each change to its measured picture (the Trainer step included)."""
    explorer, times = probe_explorer(), []
    for setting in settings:
        start = time.perf_counter()
        for control, value in setting.items():
            explorer.controls[control].value = value
        explorer.wait()
        times.append(time.perf_counter() - start)
    times.sort()
    summary = {
        "benchmark": name,
        "updates": len(times),
        "median_ms": round(1e3 * statistics.median(times), 1),
        "p95_ms": round(1e3 * p95(times), 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    report("probe_explorer_new_setting", probe_explorer(), STEPS + CASES, rounds=1)
    report_cpu("probe_explorer_new_setting_cpu", probe_explorer(), STEPS + CASES, rounds=1)
    until_measured("probe_explorer_until_measured", STEPS + CASES)
    explorer = probe_explorer(background=False)
    report_cpu("probe_explorer_first_pass_cpu", explorer, STEPS + CASES, rounds=1)
    report("probe_explorer_seen_setting", explorer, STEPS + CASES, rounds=2)
    setups = [{"setup": s} for s in pitfall_explorer().controls["setup"].options]
    report_cpu("pitfall_explorer_cpu", pitfall_explorer(), PITFALL_STEPS + setups, rounds=1)
    report("pitfall_explorer", pitfall_explorer(), PITFALL_STEPS + setups, rounds=2)
