"""Per-update latency of the precision explorer (token slider, dtype, reduction): one JSON line."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report  # noqa: E402

from lossviz.widgets.precision import precision_explorer  # noqa: E402

if __name__ == "__main__":
    explorer = precision_explorer()
    settings = [{"num_tokens": 10 ** (k / 2)} for k in range(14)]
    settings += [{"dtype": d} for d in ("float32", "bfloat16", "float16")]
    settings += [{"reduction": r} for r in ("token_mean", "sum")]
    report("precision_explorer_update", explorer, settings)
