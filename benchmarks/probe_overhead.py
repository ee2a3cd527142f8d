"""Cost of ``lv.probe`` on one training step at a real vocabulary: CPU time and peak memory.

One step (forward, token-mean cross-entropy, backward, optimizer step) of the tiny model with a
vocabulary of 151,936 (Qwen2's) and 32,000 (Llama 2's) on 4 samples x 250 trained tokens, one
thread. Plain and probed steps are interleaved (the order alternates pair by pair), so load on a
shared machine hits both alike; each line reports the medians. Time is the process's CPU time;
memory is the step's peak resident set above what the process held before it (Linux: the peak is
reset through /proc/self/clear_refs before every step), and the process's absolute peak.
Targets: time ratio <= 1.3, peak ratio <= 1.1.
Usage: python benchmarks/probe_overhead.py [--quick] [--vocab 151936,32000] [--pairs N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import time

import torch

import lossviz as lv
from lossviz.model import TinyCausalLM, TinyConfig
from lossviz.step_gradients import token_batch

LENGTHS = [250] * 4


def _kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def step(model, opt, batch) -> None:
    opt.zero_grad(set_to_none=True)
    logits = model(batch.input_ids, position_ids=batch.position_ids)
    lv.cross_entropy(logits, batch.labels, "mean", shift=True).backward()
    opt.step()


def timed(model, opt, batch, probed: bool) -> tuple[float, int, int]:
    """``(cpu seconds, step's peak above the start in KiB, absolute peak in KiB)`` of one step."""
    gc.collect()
    _reset_peak()
    base = _kib("VmRSS")
    start = time.process_time()
    if probed:
        with lv.probe(model) as rec:
            step(model, opt, batch)
    else:
        step(model, opt, batch)
    cpu = time.process_time() - start
    peak = _kib("VmHWM")
    if probed:
        assert len(rec.micro_batches) == 1 and rec.is_cross_entropy(), rec.max_residual
        n = int((batch.labels[:, 1:] != -100).sum())
        assert float((rec.W(0).sum() - 1).abs()) < 1e-5 and n == sum(LENGTHS)
        del rec
    return cpu, peak - base, peak


def measure(vocab_size: int, pairs: int) -> dict:
    batch = token_batch(LENGTHS, vocab_size=vocab_size, seed=0)
    model = TinyCausalLM(TinyConfig(vocab_size=vocab_size))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    timed(model, opt, batch, False)  # warm-up: allocator, kernels
    timed(model, opt, batch, True)
    got: dict[str, list] = {"plain": [], "probe": []}
    for i in range(pairs):
        for probed in (False, True) if i % 2 == 0 else (True, False):
            got["probe" if probed else "plain"].append(timed(model, opt, batch, probed))
    med = {k: [statistics.median(x[j] for x in v) for j in range(3)] for k, v in got.items()}
    (tp, mp, ap), (tq, mq, aq) = med["plain"], med["probe"]
    return {
        "benchmark": "probe_overhead",
        "vocab_size": vocab_size,
        "tokens": sum(LENGTHS),
        "pairs": pairs,
        "plain_cpu_median_ms": round(1e3 * tp, 1),
        "probe_cpu_median_ms": round(1e3 * tq, 1),
        "time_ratio": round(tq / tp, 3),
        "plain_step_peak_mib": round(mp / 1024, 1),
        "probe_step_peak_mib": round(mq / 1024, 1),
        "step_peak_ratio": round(mq / mp, 3),
        "process_peak_ratio": round(aq / ap, 3),
        "pair_time_ratios": [
            round(b[0] / a[0], 3) for a, b in zip(got["plain"], got["probe"], strict=True)
        ],
        "target": {"time_ratio": 1.3, "peak_ratio": 1.1},
        "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 pairs instead of --pairs")
    parser.add_argument("--pairs", type=int, default=9, help="plain/probed pairs; default 9")
    parser.add_argument("--vocab", default="151936,32000", help="vocabulary sizes, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for vocab in (int(v) for v in args.vocab.split(",")):
        print(json.dumps(measure(vocab, 5 if args.quick else args.pairs)), flush=True)


if __name__ == "__main__":
    main()
