"""Shared timing helper for the explorer latency benchmarks (one JSON line per run)."""

from __future__ import annotations

import json
import os
import statistics
import time

from lossviz.widgets.latency import p95, reference_seconds


def report(name: str, explorer, settings: list[dict], rounds: int = 3) -> None:
    """Apply each control setting ``rounds`` times and print median/p95 of ``explorer.last_seconds``."""
    times = []
    for _ in range(rounds):
        for setting in settings:
            for control, value in setting.items():
                explorer.controls[control].value = value
            times.append(explorer.last_seconds)
    times.sort()
    ref = reference_seconds(n=10)
    median = statistics.median(times)
    print(
        json.dumps(
            {
                "benchmark": name,
                "updates": len(times),
                "median_ms": round(1e3 * median, 1),
                "p95_ms": round(1e3 * p95(times), 1),
                "target_p95_ms": 100,
                "reference_one_line_figure_ms": round(1e3 * ref, 1),
                "median_vs_reference": round(median / ref, 2),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
        )
    )


def report_cpu(name: str, explorer, settings: list[dict], rounds: int = 3) -> None:
    """Like :func:`report`, in CPU seconds of each control change (the whole update it triggers).

    CPU time is what other work on a loaded machine does not inflate; the target is p95 <= 80 ms.
    """
    times = []
    for _ in range(rounds):
        for setting in settings:
            start = time.process_time()
            for control, value in setting.items():
                explorer.controls[control].value = value
            times.append(time.process_time() - start)
    times.sort()
    summary = {
        "benchmark": name,
        "updates": len(times),
        "cpu_median_ms": round(1e3 * statistics.median(times), 1),
        "cpu_p95_ms": round(1e3 * p95(times), 1),
        "cpu_max_ms": round(1e3 * times[-1], 1),
        "target_cpu_p95_ms": 80,
    }
    print(json.dumps(summary))
