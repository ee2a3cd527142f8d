"""Per-update latency of the RL aggregation explorer (lengths, advantages, mode): JSON lines.

The first line is wall time (``_latency.report``); the second is CPU time of the same updates
(``time.process_time``), which other work on a loaded machine does not inflate.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report  # noqa: E402

from lossviz import rl  # noqa: E402
from lossviz.widgets.rl import rl_explorer  # noqa: E402


def cpu_report(name: str, explorer, settings: list[dict], rounds: int = 3) -> None:
    """Like ``report``, but CPU seconds per update (the target: p95 <= 80 ms)."""
    times = []
    for _ in range(rounds):
        for setting in settings:
            start = time.process_time()
            for control, value in setting.items():
                explorer.controls[control].value = value
            times.append(time.process_time() - start)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    summary = {
        "benchmark": name,
        "updates": len(times),
        "cpu_median_ms": round(1e3 * statistics.median(times), 1),
        "cpu_p95_ms": round(1e3 * p95, 1),
        "target_cpu_p95_ms": 80,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    explorer = rl_explorer()
    settings = [{"mode": m} for m in rl.mode_names()]
    settings += [{"lengths": "5, 50, 500, 5"}, {"advantages": "1, -1, 0.5, -0.5"}]
    settings += [{"max_length": v} for v in (600, 1024, 2048)]
    report("rl_explorer_update", explorer, settings)
    cpu_report("rl_explorer_update_cpu", explorer, settings)
