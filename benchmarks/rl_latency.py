"""Per-update latency of the RL aggregation explorer (lengths, advantages, mode): JSON lines.

The first line is wall time (``_latency.report``); the second is CPU time of the same updates
(``time.process_time``), which other work on a loaded machine does not inflate.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report, report_cpu  # noqa: E402

from lossviz import rl  # noqa: E402
from lossviz.widgets.rl import rl_explorer  # noqa: E402

if __name__ == "__main__":
    explorer = rl_explorer()
    settings = [{"mode": m} for m in rl.mode_names()]
    settings += [{"lengths": "5, 50, 500, 5"}, {"advantages": "1, -1, 0.5, -0.5"}]
    settings += [{"max_length": v} for v in (600, 1024, 2048)]
    report("rl_explorer_update", explorer, settings)
    report_cpu("rl_explorer_update_cpu", explorer, settings)
