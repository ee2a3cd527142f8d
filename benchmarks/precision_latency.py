"""Per-update latency of the precision explorer (token slider, dtype, reduction): two JSON lines.

The first line is wall time (``report``); the second is CPU time (``time.process_time``) of the same
updates, which other processes on a loaded machine do not inflate.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report  # noqa: E402

from lossviz.widgets.precision import precision_explorer  # noqa: E402

SETTINGS = [{"num_tokens": 10 ** (k / 2)} for k in range(14)]
SETTINGS += [{"dtype": d} for d in ("float32", "bfloat16", "float16")]
SETTINGS += [{"reduction": r} for r in ("token_mean", "sum")]


def report_cpu(name: str, explorer, settings: list[dict], rounds: int = 3) -> None:
    """Like ``report``, but CPU seconds of each control change (the whole update it triggers)."""
    times = []
    for _ in range(rounds):
        for setting in settings:
            start = time.process_time()
            for control, value in setting.items():
                explorer.controls[control].value = value
            times.append(time.process_time() - start)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(
        json.dumps(
            {
                "benchmark": name,
                "updates": len(times),
                "cpu_median_ms": round(1e3 * statistics.median(times), 1),
                "cpu_p95_ms": round(1e3 * p95, 1),
                "cpu_max_ms": round(1e3 * times[-1], 1),
                "target_cpu_p95_ms": 80,
            }
        )
    )


if __name__ == "__main__":
    report("precision_explorer_update", precision_explorer(), SETTINGS)
    report_cpu("precision_explorer_update_cpu", precision_explorer(), SETTINGS)
