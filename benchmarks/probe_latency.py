"""Per-update latency of the probe explorer (case, lengths, batch, GA): JSON lines.

Every new setting is one real transformers ``Trainer`` step; the explorer remembers each run, so
a setting seen before only redraws. The first two lines time the batch and GA slider steps of a
fresh explorer (every step a new setting: a Trainer step and a full draw), wall and CPU time; the
last line the same steps again (runs remembered: blitting only).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report, report_cpu  # noqa: E402

from lossviz.widgets.probe import probe_explorer  # noqa: E402

# the browser benchmark's steps: batch up and down with GA 4, then GA down and up with batch 1
STEPS = [{"batch": b} for b in (2, 3, 4, 3, 2, 1)] + [{"ga": g} for g in (3, 2, 1, 2, 3, 4)]
CASES = [{"case": c} for c in ("naive", "compute_loss", "packed", "ga")]

if __name__ == "__main__":
    report("probe_explorer_new_setting", probe_explorer(), STEPS + CASES, rounds=1)
    report_cpu("probe_explorer_new_setting_cpu", probe_explorer(), STEPS + CASES, rounds=1)
    explorer = probe_explorer()
    report_cpu("probe_explorer_first_pass_cpu", explorer, STEPS + CASES, rounds=1)
    report("probe_explorer_seen_setting", explorer, STEPS + CASES, rounds=2)
