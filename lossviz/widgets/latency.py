"""Time an explorer the way a learner uses it: change one control, wait for compute + render.

``time_updates(explorer, sweeps)`` sets each control to each of its values in turn (the change fires
the explorer's update synchronously, without a kernel) and returns the seconds of every update.
Any explorer built on :class:`~lossviz.widgets.Explorer` can be measured; ``benchmarks/`` calls it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence

from .base import Explorer

__all__ = ["time_updates", "summarize", "default_sweeps", "p95", "reference_seconds"]


def default_sweeps(explorer: Explorer, max_values: int = 6) -> list[tuple[str, list]]:
    """For each control: up to ``max_values`` of its values (options, or a slider's range)."""
    sweeps = []
    for name, control in explorer.controls.items():
        if getattr(control, "disabled", False):
            continue
        if hasattr(control, "options"):
            values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        elif hasattr(control, "min") and hasattr(control, "max"):
            lo, hi = control.min, control.max
            step = max((hi - lo) / max(max_values - 1, 1), getattr(control, "step", 1) or 1)
            values = sorted({type(control.value)(lo + i * step) for i in range(max_values)} | {hi})
        else:
            continue
        sweeps.append((name, list(values)[:max_values]))
    return sweeps


def time_updates(
    explorer: Explorer,
    sweeps: Iterable[tuple[str, Sequence]],
    repeats: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Seconds per update: set ``explorer.controls[name].value = v`` for every (name, values) pair.

    A value equal to the current one fires no update, so it is skipped rather than timed.
    Each control is put back to its starting value afterwards (that update is not timed).
    ``clock=time.process_time`` measures this process's CPU time instead of wall time (less
    sensitive to other programs on a busy machine).
    """
    times = []
    for _ in range(repeats):
        for name, values in sweeps:
            control = explorer.controls[name]
            start_value = control.value
            for value in values:
                if value == control.value:
                    continue
                t0 = clock()
                control.value = value
                times.append(clock() - t0)
                if explorer.last_view is None or explorer.last_view.text.startswith(
                    ("This setting is not valid", "Something went wrong")
                ):
                    raise RuntimeError(f"{name}={value!r} broke the explorer: {explorer.last_view}")
            control.value = start_value
    return times


def p95(times: Sequence[float]) -> float:
    """The 95th percentile (nearest rank) of ``times``."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summarize(times: Sequence[float]) -> dict:
    """Median, p95 and max in milliseconds, and the number of updates."""
    return {
        "updates": len(times),
        "median_ms": round(1000 * statistics.median(times), 1),
        "p95_ms": round(1000 * p95(times), 1),
        "max_ms": round(1000 * max(times), 1),
    }


def reference_seconds(n: int = 15, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds to build a one-axes line plot and encode it as an explorer does (dpi 80).

    The floor any matplotlib explorer pays on this machine: benchmarks report their medians as a
    ratio to it, so numbers from a busy or a fast machine can be compared.
    """
    from matplotlib.figure import Figure

    from .base import figure_png

    times = []
    for i in range(n + 1):  # the first draw warms font caches and is not counted
        t0 = clock()
        fig = Figure(figsize=(6.4, 3.0))
        fig.add_subplot().plot([0, 1, 2], [0, 1, 0])
        figure_png(fig, dpi=80)
        if i:
            times.append(clock() - t0)
    return statistics.median(times)
