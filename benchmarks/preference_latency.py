"""Per-update latency of the preference-pair explorer (lengths, loss, beta, shifts): JSON lines.

The first line is wall time (``_latency.report``); the second is CPU time of the same updates
(``time.process_time``), which other work on a loaded machine does not inflate.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report, report_cpu  # noqa: E402

from lossviz import preference  # noqa: E402
from lossviz.widgets.preference import preference_explorer  # noqa: E402

if __name__ == "__main__":
    explorer = preference_explorer()
    settings = [{"loss": name} for name in preference.LOSSES]
    settings += [{"chosen_lengths": "5, 50, 500"}, {"rejected_lengths": "500, 50, 5"}]
    settings += [{"beta": v} for v in (0.05, 0.5, 2.0)]
    settings += [{"chosen_shift": v} for v in (0.2, 0.5, -0.3)]
    report("preference_explorer_update", explorer, settings)
    report_cpu("preference_explorer_update_cpu", explorer, settings)
