"""Per-update latency of the accumulation explorer, as one JSON line.

Moves every control of ``accumulation_explorer`` through a fixed sequence of settings (each one a
cold update: the gradient and weight caches are cleared; the figure reused per layout is kept)
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

from matplotlib.figure import Figure

from lossviz.widgets.accumulation import _columns, _gaps, accumulation_explorer
from lossviz.widgets.base import figure_png

SETTINGS = [
    ("ga_steps", 2),
    ("ga_steps", 8),
    ("micro_batch_size", 2),
    ("world_size", 2),
    ("normalization", "global"),
    ("normalization", "sum"),
    ("lengths", "5, 50, 9, 120"),
    ("micro_batch_size", 1),
    ("world_size", 4),
    ("ga_steps", 3),
    ("lengths", "12, 40, 7, 300"),
    ("normalization", "naive"),
]


def _reference() -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    fig = Figure(figsize=(7.5, 3.0))
    fig.subplots().bar(range(4), [1, 2, 3, 4])
    figure_png(fig, dpi=80)
    return time.perf_counter() - start, time.process_time() - cpu


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def main(rounds: int = 3) -> dict:
    explorer = accumulation_explorer()
    explorer.update()  # warm-up: imports, first figure, first model
    times, cpus, refs, ref_cpus, with_gap = [], [], [], [], 0
    for _ in range(rounds):
        for name, value in SETTINGS:
            _gaps.cache_clear()
            _columns.cache_clear()
            start, cpu = time.perf_counter(), time.process_time()
            explorer.controls[name].value = value
            times.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
            with_gap += explorer.last_view.data.get("gaps") is not None
            wall_ref, cpu_ref = _reference()
            refs.append(wall_ref)
            ref_cpus.append(cpu_ref)
    med, ref = statistics.median(times), statistics.median(refs)
    return {
        "benchmark": "accumulation_explorer_update",
        "updates": len(times),
        "updates_with_gradient_gap": with_gap,
        "median_ms": round(1000 * med, 1),
        "p95_ms": round(1000 * _p95(times), 1),
        "reference_median_ms": round(1000 * ref, 1),
        "median_over_reference": round(med / ref, 2),
        "p95_over_reference": round(_p95(times) / ref, 2),
        # CPU time of this process: close to the wall time an idle machine would show
        "cpu_median_ms": round(1000 * statistics.median(cpus), 1),
        "cpu_p95_ms": round(1000 * _p95(cpus), 1),
        "reference_cpu_median_ms": round(1000 * statistics.median(ref_cpus), 1),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
