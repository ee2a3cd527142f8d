"""Start one module as ``R`` local processes (gloo on 127.0.0.1) and collect each rank's JSON.

The real trainers are measured on several ranks by running a module of this folder as
``python -m MODULE CONFIGS_JSON OUT`` once per rank, with ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``
and a free ``MASTER_PORT`` set the way ``torchrun`` sets them. Every process is ended on every path:
a rank that fails or outlives ``timeout`` ends them all, with the failing rank's last log lines.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

__all__ = ["rank_main", "run_ranks"]


def run_ranks(
    module: str,
    cfgs: list[dict],
    world_size: int,
    timeout: float,
    *,
    env: dict[str, str] | None = None,
    python: str | None = None,
    doing: str = "",
) -> list:
    """``[each rank's JSON result]`` of ``python -m module json.dumps(cfgs) OUT`` on ``world_size``
    processes. ``env``: the processes' environment (default this one's); ``doing``: words for the
    error ("running the Trainer"). Raises :class:`lossviz.distributed.DistributedRunError` (with
    every pid, all ended) when a rank fails or the run outlives ``timeout`` seconds."""
    from ..distributed import DistributedRunError, free_port

    R = world_size
    base = dict(os.environ if env is None else env)
    base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    base.update(WORLD_SIZE=str(R), OMP_NUM_THREADS="1", LOCAL_WORLD_SIZE=str(R), NODE_RANK="0")
    with tempfile.TemporaryDirectory(prefix="lossviz-ranks-") as tmp:
        procs = []
        try:
            for r in range(R):
                out = os.path.join(tmp, f"rank{r}.json")
                log = open(os.path.join(tmp, f"rank{r}.log"), "w")  # noqa: SIM115 - closed below
                rank_env = dict(base, RANK=str(r), LOCAL_RANK=str(r))
                cmd = [python or sys.executable, "-m", module, json.dumps(cfgs), out]
                procs.append(
                    (subprocess.Popen(cmd, env=rank_env, stdout=log, stderr=log), log, out)
                )
            deadline = time.monotonic() + timeout
            while any(p.poll() is None for p, _, _ in procs):
                failed = [r for r, (p, _, _) in enumerate(procs) if p.poll() not in (None, 0)]
                if failed or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            # the rank that failed explains it; a rank still running only means a time-out
            failed = [
                r
                for r, (p, _, o) in enumerate(procs)
                if p.poll() is not None and (p.poll() != 0 or not os.path.exists(o))
            ]
            running = [r for r, (p, _, _) in enumerate(procs) if p.poll() is None]
            if failed or running:
                r = (failed or running)[0]
                procs[r][1].flush()
                with open(procs[r][1].name) as f:
                    tail = f.read().strip().splitlines()[-3:]
                what = "failed" if failed else f"timed out after {timeout:g} s"
                raise DistributedRunError(
                    f"rank {r} of {R} {what}{' ' + doing if doing else ''}, so every rank was "
                    "ended: " + " | ".join(tail),
                    [p.pid for p, _, _ in procs],
                )
            results = []
            for _, _, o in procs:
                with open(o) as f:
                    results.append(json.load(f))
            return results
        finally:
            for p, log, _ in procs:
                if p.poll() is None:
                    p.kill()
                p.wait(timeout=10)
                log.close()


def rank_main(
    run_one: Callable[[dict], dict], finish: Callable[[list], None] | None = None
) -> None:
    """The body of ``python -m MODULE CONFIGS_JSON OUT`` in one rank (what :func:`run_ranks`
    starts): every config run on one thread, ``finish(results)`` if given, then the results
    written to OUT atomically (a rank that dies leaves no half-written file).

    A process group the runs left (the Trainer's, accelerate's, Lightning's) is ended here, once
    every rank reaches it and the runs' models are freed: a gloo group still alive while Python
    shuts down can abort the process ("terminate called without an active exception")."""
    import torch
    import torch.distributed as dist

    cfgs, out = json.loads(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    results = [run_one(c) for c in cfgs]
    if finish is not None:
        finish(results)
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # a Trainer sits in reference cycles: its wrapped model goes now, not at exit
        dist.barrier()
        dist.destroy_process_group()
    with open(out + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(out + ".tmp", out)
