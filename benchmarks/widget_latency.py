"""Per-update latency of the explorers: compute + render after a control change (target p95 <= 100 ms).

Prints one JSON line: for each explorer, wall-clock median/p95/max in ms, the same in CPU time of
this process, and the ratio of each median to a reference measured in the same run (one small line
plot rendered to PNG), so that numbers from a busy or a fast machine can be compared. Add an
explorer with one line in EXPLORERS.

    python benchmarks/widget_latency.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

from lossviz.widgets.latency import default_sweeps, reference_seconds, summarize, time_updates
from lossviz.widgets.reductions import reduction_explorer

# name -> (factory, sweeps or None for every control's default values)
EXPLORERS = {
    "reduction_explorer": (
        reduction_explorer,
        [
            ("num_samples", [1, 2, 4, 6, 3]),
            ("length_0", [1, 8, 24, 3]),
            ("length_1", [1, 24, 12]),
            ("padding", ["left", "packed", "right"]),
            ("pad_to_multiple_of", [4, 8, 16, 1]),
            ("reduction", None),  # every registered reduction
        ],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = {
        "reference_ms": round(1000 * reference_seconds(), 1),
        "reference_cpu_ms": round(1000 * reference_seconds(clock=time.process_time), 1),
    }
    for name, (factory, sweeps) in EXPLORERS.items():
        explorer = factory()
        defaults = dict(default_sweeps(explorer, max_values=20))
        plan = [(c, v if v is not None else defaults[c]) for c, v in (sweeps or defaults.items())]
        summary = summarize(time_updates(explorer, plan, repeats=args.repeats))
        summary["median_vs_reference"] = round(summary["median_ms"] / result["reference_ms"], 2)
        cpu = summarize(time_updates(explorer, plan, repeats=1, clock=time.process_time))
        summary["cpu_median_ms"], summary["cpu_p95_ms"] = cpu["median_ms"], cpu["p95_ms"]
        summary["cpu_median_vs_reference"] = round(cpu["median_ms"] / result["reference_cpu_ms"], 2)
        result[name] = summary
    print(json.dumps(result))


if __name__ == "__main__":
    main()
