"""Merge the per-rank records of your own multi-process run into the step's W, with a verdict.

Inside your script, wrap the training in ``with lv.probe(model, save_to="probe_records"):``; every
rank (``torchrun --nproc_per_node R`` or ``accelerate launch --num_processes R``) writes its
record there. This command puts the ranks back together: each row of each micro-batch is a sample
(packed rows are split where ``position_ids`` restart), DDP's mean over ranks is applied, and the
measured weights are compared with every lossviz model of the same dealing. Prints each sample's
measured weight, the intended full-batch token mean, the worst ratio, the gradient's residual and a
verdict.
Example: torchrun --nproc_per_node 2 train.py && lossviz probe-merge probe_records
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "merge", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lossviz probe-merge``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "folder", help="the save_to= folder of lv.probe (rank0.json, rank1.json, ...)"
    )
    parser.add_argument(
        "--step", type=int, default=0, help="the optimizer step to merge (0-based); default 0"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the whole merged result as JSON instead"
    )


def merge(folder: str, step: int = 0) -> dict:
    """The records in ``folder`` as one step: the same result dict as ``lossviz probe`` builds.

    Keys: ``lengths`` (trained tokens per sample), ``plan[r][k]`` (the samples of rank r's k-th
    micro-batch), ``measured`` (per sample, each trained token's step weight ``W / R``),
    ``predicted`` / ``diff`` / ``matches`` (every lossviz model, within 1e-6), ``expected``
    (``"global"``: the full-batch token mean), ``max_residual``, ``off_mask_max`` (the largest
    ``|W|`` on an untrained position), ``paths`` (logits, log_probs or hidden).
    """
    from ..measured_step import _pieces, compare_case, predictions
    from ..probe import load_records

    records = load_records(folder)
    R = len(records)
    plan: list[list[list[int]]] = [[] for _ in range(R)]
    lengths: list[int] = []
    measured: list[list[float]] = []
    off, residual, rows, paths = 0.0, 0.0, [], set()
    for r, rec in enumerate(records):
        mbs = rec.for_step(step)
        if not mbs:
            seen = sorted({mb.step for mb in rec.micro_batches})
            raise ValueError(
                f"rank {r} recorded no micro-batch for step {step}; steps seen: {seen}"
            )
        for mb in mbs:
            paths.add(mb.via)
            residual = max(residual, mb.max_residual)
            rows.append(mb.labels.shape[0])
            here = []
            W = mb.step_W.tolist()
            for b, labels in enumerate(mb.labels.tolist()):
                pos = None if mb.position_ids is None else mb.position_ids[b].tolist()
                claimed = set()
                for start, end in _pieces(labels, pos):
                    trained = [t for t in range(start + 1, end) if labels[t] != -100]
                    claimed.update(trained)
                    if trained:
                        here.append(len(lengths))
                        lengths.append(len(trained))
                        measured.append([W[b][t] for t in trained])
                off = max([off] + [abs(w) for t, w in enumerate(W[b]) if t not in claimed])
            plan[r].append(here)
    if not lengths:
        raise ValueError(f"step {step} trained no token on any rank")
    predicted = predictions(lengths, plan)
    diff = {n: compare_case(measured, p) for n, p in predicted.items()}
    return {
        "folder": folder,
        "step": step,
        "lengths": lengths,
        "per_device_batch_size": max(rows),
        "ga_steps": max(len(p) for p in plan),
        "world_size": R,
        "plan": plan,
        "measured": measured,
        "predicted": predicted,
        "diff": diff,
        "matches": [n for n in predicted if diff[n]["max_rel_diff"] < 1e-6],
        "expected": "global",
        "max_residual": residual,
        "off_mask_max": off,
        "paths": sorted(paths),
        "header": (
            f"your run ({folder}), optimizer step {step}: {len(lengths)} samples on {R} rank(s), "
            f"up to {max(rows)} rows x {max(len(p) for p in plan)} micro-batches per rank; "
            f"read from the {' and '.join(sorted(paths))}"
            + (
                " (log-probs: the residual checks only the mask of scored labels, not that the "
                "loss is cross-entropy)"
                if "log_probs" in paths
                else ""
            )
        ),
        "who": f"your run ({R} rank{'s' if R > 1 else ''})",
    }


def run(args: argparse.Namespace) -> int:
    """Merge and print; 0 on success, 2 (with a message on stderr) on a bad folder."""
    from .probe import report

    try:
        result = merge(args.folder, args.step)
    except ValueError as err:
        print(f"lossviz probe-merge: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("\n".join(report(result)))
    return 0
