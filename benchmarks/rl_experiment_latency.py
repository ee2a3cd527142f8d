"""Per-update latency of the RL experiment explorer (arms, seeds, metric) on the cached results.

JSON lines: wall and CPU time of metric changes (blitting: curves and y axes only), then of arm
and seed choices (a new picture per choice, kept for when the learner comes back to it).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _latency import report, report_cpu  # noqa: E402

from lossviz.experiments.rl_results import load_rl_results  # noqa: E402
from lossviz.plots.rl_experiment import METRIC_LABELS  # noqa: E402
from lossviz.widgets.rl_experiment import rl_experiment_explorer  # noqa: E402

if __name__ == "__main__":
    results = load_rl_results()
    explorer = rl_experiment_explorer(results)
    metrics = [{"metric": m} for m in METRIC_LABELS]
    report("rl_experiment_explorer_metric", explorer, metrics)
    report_cpu("rl_experiment_explorer_metric_cpu", explorer, metrics)
    seeds = list(results["config"]["seeds"])
    choices = [{"seeds": tuple(seeds[:k])} for k in (1, 3, len(seeds))]
    choices += [{"arms": a} for a in (("grpo",), ("grpo", "dapo", "dr_grpo"), ("grpo", "dr_grpo"))]
    report("rl_experiment_explorer_arms_seeds", explorer, choices)
