"""lossviz's cross-entropy (log-softmax + gather) vs F.cross_entropy: forward + backward.

Prints one JSON line: median seconds of each, their ratio, and the peak extra memory (RSS high-water
mark above the inputs, measured in a fresh process per implementation) and its ratio.
Targets: time ratio <= 1.2, memory ratio <= 1.1.  Usage: python benchmarks/cross_entropy.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import lossviz as lv

IMPLS = {
    "lossviz": lambda x, y: lv.cross_entropy(x, y, "mean"),
    "torch": lambda x, y: F.cross_entropy(x.view(-1, x.shape[-1]), y.view(-1)),
}


def inputs(shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    B, T, V = shape
    logits = torch.randn(B, T, V, generator=gen).requires_grad_()
    labels = torch.randint(0, V, (B, T), generator=gen)
    labels[:, -T // 8 :] = -100  # some padding, as in a real batch
    return logits, labels


def step(name: str, logits: torch.Tensor, labels: torch.Tensor) -> float:
    logits.grad = None
    start = time.perf_counter()
    IMPLS[name](logits, labels).backward()
    return time.perf_counter() - start


def _kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(field)


def peak_extra_mib(name: str, shape: tuple[int, int, int]) -> float:
    """Run one forward + backward in this process; the RSS peak above the inputs, in MiB."""
    logits, labels = inputs(shape)
    logits.grad = torch.zeros_like(logits)  # the gradient buffer exists in both cases
    base = _kib("VmRSS")
    IMPLS[name](logits, labels).backward()
    return (_kib("VmHWM") - base) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="8,512,32000", help="B,T,V (default 8,512,32000)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a small shape, 3 repeats")
    parser.add_argument("--memory-of", choices=list(IMPLS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (2, 128, 8000) if args.quick else tuple(int(s) for s in args.shape.split(","))
    if args.memory_of:
        print(peak_extra_mib(args.memory_of, shape))
        return
    repeats = 3 if args.quick else args.repeats
    logits, labels = inputs(shape)
    times = {name: [] for name in IMPLS}
    for name in IMPLS:
        step(name, logits, labels)  # warm-up
    for _ in range(repeats):  # interleaved, so drift on a noisy machine hits both alike
        for name in IMPLS:
            times[name].append(step(name, logits, labels))
    del logits, labels
    memory = {}
    for name in IMPLS:
        cmd = [sys.executable, __file__, "--memory-of", name, "--shape", ",".join(map(str, shape))]
        memory[name] = float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(
        json.dumps(
            {
                "shape": list(shape),
                "dtype": "float32",
                "threads": torch.get_num_threads(),
                "repeats": repeats,
                "median_s": {k: round(v, 4) for k, v in med.items()},
                "time_ratio": round(med["lossviz"] / med["torch"], 3),
                "peak_extra_mib": {k: round(v, 1) for k, v in memory.items()},
                "memory_ratio": round(memory["lossviz"] / memory["torch"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
