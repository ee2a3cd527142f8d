"""Per-update latency of the accumulation explorer, as one JSON line.

Moves every control of ``accumulation_explorer`` through a fixed sequence of settings (each one a
cold update: the explorer's remembered results are cleared; the figure reused per layout is kept)
and times ``Explorer.update`` end to end (render, tiny-model gradients, PNG). The reference,
measured in the same run, is the smallest possible update: a one-axes bar chart rendered to PNG,
so the ratio stays meaningful on a busy machine.
The CPU time of the process is reported too (the explorer computes on one thread): on a machine
shared with other jobs it estimates the wall time an idle machine would show.
"""

from __future__ import annotations

import json
import statistics
import time

from lossviz.widgets.accumulation import accumulation_explorer
from lossviz.widgets.latency import p95, reference_seconds

SETTINGS = [
    ("ga_steps", 2),
    ("ga_steps", 8),
    ("per_device_batch_size", 2),
    ("world_size", 2),
    ("normalization", "global"),
    ("normalization", "sum"),
    ("lengths", "5, 50, 9, 120"),
    ("per_device_batch_size", 1),
    ("world_size", 4),
    ("ga_steps", 3),
    ("lengths", "12, 40, 7, 300"),
    ("normalization", "naive"),
]


def main(rounds: int = 3) -> dict:
    explorer = accumulation_explorer()
    explorer.update()  # warm-up: imports, first figure, first model
    times, cpus, refs, ref_cpus, with_gap = [], [], [], [], 0
    for _ in range(rounds):
        for name, value in SETTINGS:
            explorer.render.keywords["canvas"]._results.clear()  # a cold update
            start, cpu = time.perf_counter(), time.process_time()
            explorer.controls[name].value = value
            times.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
            with_gap += explorer.last_view.data.get("gaps") is not None
            refs.append(reference_seconds(n=1))
            ref_cpus.append(reference_seconds(n=1, clock=time.process_time))
    med, ref = statistics.median(times), statistics.median(refs)
    return {
        "benchmark": "accumulation_explorer_update",
        "updates": len(times),
        "updates_with_gradient_gap": with_gap,
        "median_ms": round(1000 * med, 1),
        "p95_ms": round(1000 * p95(times), 1),
        "reference_median_ms": round(1000 * ref, 1),
        "median_over_reference": round(med / ref, 2),
        "p95_over_reference": round(p95(times) / ref, 2),
        # CPU time of this process: close to the wall time an idle machine would show
        "cpu_median_ms": round(1000 * statistics.median(cpus), 1),
        "cpu_p95_ms": round(1000 * p95(cpus), 1),
        "reference_cpu_median_ms": round(1000 * statistics.median(ref_cpus), 1),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
