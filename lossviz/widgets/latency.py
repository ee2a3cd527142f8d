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

__all__ = ["time_updates", "summarize", "default_sweeps"]


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


def summarize(times: Sequence[float]) -> dict:
    """Median, p95 and max in milliseconds, and the number of updates."""
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "updates": len(ordered),
        "median_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * p95, 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }
