"""Time of one training step with and without ``lv.probe`` on the tiny model (forward, backward, step).

Prints one JSON line per vocabulary size: the median CPU time of a step (one thread) with and
without the probe (runs interleaved, so load on the machine hits both alike) and their ratio.
Target: ratio <= 1.3 on the tiny model (vocabulary 64); the probe's own work grows with B x T x V
(a float64 softmax and two dot products per position), which the larger vocabulary shows.
Usage: python benchmarks/probe_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

import lossviz as lv
from lossviz.model import TinyCausalLM, TinyConfig
from lossviz.step_gradients import token_batch

LENGTHS = [30, 70, 50, 120]


def step(model, opt, batch) -> float:
    # CPU time of this process (one thread): what other work on a loaded machine does not inflate
    start = time.process_time()
    opt.zero_grad()
    logits = model(batch.input_ids, position_ids=batch.position_ids)
    lv.cross_entropy(logits, batch.labels, "mean", shift=True).backward()
    opt.step()
    return time.process_time() - start


def measure(vocab_size: int, rounds: int) -> dict:
    batch = token_batch(LENGTHS, vocab_size=vocab_size, seed=0)
    model = TinyCausalLM(TinyConfig(vocab_size=vocab_size))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    times = {"plain": [], "probe": []}
    for _ in range(3):  # warm-up
        step(model, opt, batch)
    for _ in range(rounds):
        times["plain"].append(step(model, opt, batch))
        with lv.probe(model) as rec:
            times["probe"].append(step(model, opt, batch))
        assert rec.micro_batches and rec.is_cross_entropy()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "benchmark": "probe_overhead",
        "vocab_size": vocab_size,
        "tokens": sum(LENGTHS),
        "steps": rounds,
        "plain_cpu_median_ms": round(1e3 * med["plain"], 2),
        "probe_cpu_median_ms": round(1e3 * med["probe"], 2),
        "ratio": round(med["probe"] / med["plain"], 3),
        "target_ratio": 1.3 if vocab_size == TinyConfig().vocab_size else None,
        "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 steps instead of 100")
    args = parser.parse_args()
    rounds = 20 if args.quick else 100
    torch.set_num_threads(1)
    for vocab in (TinyConfig().vocab_size, 4096):
        print(json.dumps(measure(vocab, rounds)))


if __name__ == "__main__":
    main()
