"""Per-update latency of the precision explorer (token slider, dtype, reduction): two JSON lines.

The first line is wall time (``report``); the second is CPU time (``time.process_time``) of the same
updates, which other processes on a loaded machine do not inflate.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report, report_cpu  # noqa: E402

from lossviz.widgets.precision import precision_explorer  # noqa: E402

SETTINGS = [{"num_tokens": 10 ** (k / 2)} for k in range(14)]
SETTINGS += [{"dtype": d} for d in ("float32", "bfloat16", "float16")]
SETTINGS += [{"reduction": r} for r in ("token_mean", "sum")]


if __name__ == "__main__":
    report("precision_explorer_update", precision_explorer(), SETTINGS)
    report_cpu("precision_explorer_update_cpu", precision_explorer(), SETTINGS)
