"""Per-update latency of the chat explorer; prints one JSON line (target: p95 <= 100 ms).

Each update is a control change handled exactly as in a notebook (render + PNG into the Output).
The reference is a one-line matplotlib figure rendered to PNG in the same run, so the ratio says
how the explorer compares to the cheapest possible picture on this machine, whatever its load.
``cpu_*`` is the process CPU time of each update: on a shared machine it is closer to what an idle
machine's wall clock would show than the wall clock itself.
"""

import json
import statistics
import time

from lossviz.widgets.chat import chat_explorer
from lossviz.widgets.latency import p95, reference_seconds

CHANGES = [
    ("prompt_weight", 0.1),
    ("strategy", "last_assistant"),
    ("reduction", "sample_mean"),
    ("layout", "split"),
    ("turns", 4),
    ("assistant_lengths", "24, 3"),
    ("user_lengths", "24"),
    ("prompt_weight", 0.5),
    ("train_end_of_turn", False),
    ("strategy", "all"),
    ("layout", "masked"),
    ("reduction", "sum"),
    ("turns", 1),
    ("assistant_lengths", "2, 8, 4"),
    ("user_lengths", "6"),
    ("strategy", "assistant"),
    ("train_end_of_turn", True),
    ("turns", 3),
    ("reduction", "token_mean"),
    ("prompt_weight", 0.0),
]


def main(rounds: int = 3) -> dict:
    explorer = chat_explorer()
    reference_seconds(n=1)  # warm the font cache
    updates, cpu, refs = [], [], []
    for _ in range(rounds):
        for name, value in CHANGES:
            start = time.process_time()
            explorer.controls[name].value = value
            cpu.append(time.process_time() - start)
            updates.append(explorer.last_seconds)
            refs.append(reference_seconds(n=1))
    result = {
        "benchmark": "chat_explorer_update",
        "updates": len(updates),
        "median_ms": round(1000 * statistics.median(updates), 1),
        "p95_ms": round(1000 * p95(updates), 1),
        "cpu_median_ms": round(1000 * statistics.median(cpu), 1),
        "cpu_p95_ms": round(1000 * p95(cpu), 1),
        "reference_median_ms": round(1000 * statistics.median(refs), 1),
        "ratio_median_vs_reference": round(statistics.median(updates) / statistics.median(refs), 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
