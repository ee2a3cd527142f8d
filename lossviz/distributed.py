"""A real data-parallel step: ``R`` local processes, gloo on 127.0.0.1, ``DistributedDataParallel``.

:func:`run_ddp` spawns ``world_size`` processes (start method ``spawn``, so it works from a notebook:
the worker lives here, in the package, because a function defined in a notebook cannot be spawned).
Each rank builds the same tiny model and batch, takes its share of the batch with
:func:`lossviz.step_shape.deal` (the ``DistributedSampler`` rule), runs the one GA loop
:func:`lossviz.step_gradients.rank_grad` under DDP (``no_sync`` on all but the last micro-batch,
so gradients are all-reduced once, averaged over ranks), and writes
its gradient to a temporary file. The parent compares them with the gradient that
``accumulation_weights`` predicts on the full batch.

From a plain script, call :func:`run_ddp` under ``if __name__ == "__main__":``: each rank is started
with ``spawn``, which imports the script again (a notebook needs nothing).

Safety: every argument is checked before a process starts; the port is picked free (bind port 0);
every wait has a timeout; a rank that raises ends the whole group (the others are terminated) with a
:class:`DistributedRunError` naming the rank; and no process is left behind on any error path.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta

import torch

from .checks import ArgumentTypeError, integer, integer_list, positive_int
from .devices import torch_threads
from .reductions import resolve_reduction
from .step_shape import deal

__all__ = ["DistributedRunError", "free_port", "run_ddp"]


class DistributedRunError(RuntimeError):
    """A rank failed or the group timed out; ``pids`` lists the processes (all ended by then)."""

    def __init__(self, message: str, pids: list[int]) -> None:
        super().__init__(message)
        self.pids = pids


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it when binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _worker(rank: int, cfg: dict, out_dir: str) -> None:
    """One rank: join the group, run the GA loop under DDP, save the averaged gradient."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from .accumulation import micro_batch_weights
    from .model import TinyCausalLM, TinyConfig
    from .step_gradients import rank_grad, token_batch

    entered = time.time()
    torch.set_num_threads(1)  # R processes share a few cores
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{cfg['port']}",
        rank=rank,
        world_size=cfg["world_size"],
        timeout=timedelta(seconds=cfg["timeout"]),
    )
    joined = time.time()
    try:
        if rank == cfg["fail_rank"]:
            raise RuntimeError(f"injected failure on rank {rank} (fail_rank={rank})")
        model_cfg = TinyConfig(**cfg["model"])
        batch = token_batch(cfg["lengths"], vocab_size=model_cfg.vocab_size, seed=cfg["seed"])
        mask = batch.loss_mask()
        plan = deal(mask.shape[0], ga_steps=cfg["ga_steps"], world_size=cfg["world_size"])
        grads = {}
        for normalize in cfg["normalizations"]:
            local = micro_batch_weights(mask, plan, reduction=cfg["reduction"], normalize=normalize)
            model = DDP(TinyCausalLM(model_cfg))
            grads[normalize] = rank_grad(
                model, batch, plan[rank], local[rank], no_sync=model.no_sync
            )
        times = {"entered": entered, "joined": joined, "done": time.time()}
        path = os.path.join(out_dir, f"rank{rank}.pt")
        torch.save({"grads": grads, "times": times}, path + ".tmp")
        os.replace(path + ".tmp", path)  # the parent sees the file only once it is complete
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _refuse_while_bootstrapping() -> None:
    """A clear error in a rank that is importing an unguarded script (instead of a spawn loop)."""
    import multiprocessing

    # spawn sets _inheriting while a new process imports the parent's main module
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "run_ddp was called while a worker process was starting: the script that calls it "
            "must do so under `if __name__ == \"__main__\":` (each rank is started with 'spawn', "
            "which imports the script again)"
        )


def _end_all(processes) -> None:
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


def run_ddp(
    lengths: Sequence[int],
    *,
    world_size: int = 2,
    ga_steps: int = 1,
    reduction: str = "token_mean",
    normalizations: Sequence[str] = ("naive", "global"),
    seed: int = 0,
    timeout: float = 60.0,
    fail_rank: int | None = None,
) -> dict:
    """Run one GA + DDP step in ``world_size`` processes; return each rank's gradient and W's.

    Returns ``{"grads": {normalize: [R, P]}, "predicted": {normalize: [P]}, "max_abs_diff":
    {normalize: float}, "seconds": float, "phases": {name: seconds}, "pids": [...]}``;
    ``predicted`` is the gradient of ``sum(accumulation_weights(...) * l)`` from one full-batch
    forward in this process; ``seconds`` is the wall time of the whole call.
    ``fail_rank`` makes that rank raise (to test that a failure ends the group cleanly).
    Every argument is checked before a process starts. From a plain script, call it under
    ``if __name__ == "__main__":``: the ranks start with ``spawn``, which imports the script again.
    """
    import torch.multiprocessing as mp

    from .accumulation import NORMALIZATIONS, accumulation_weights
    from .model import TinyCausalLM, TinyConfig
    from .step_gradients import token_batch, weighted_grad

    _refuse_while_bootstrapping()
    # every argument is checked here, before a process starts: a late error would leave workers
    lengths = integer_list("lengths", lengths, low=1)
    world_size = integer("world_size (local processes)", world_size, low=2, high=8)
    ga_steps = positive_int("ga_steps", ga_steps)
    reduction = resolve_reduction(reduction).name
    if isinstance(normalizations, str) or not normalizations:
        raise ValueError(
            f"normalizations must be a non-empty list such as ('naive', 'global'), got "
            f"{normalizations!r}"
        )
    for n in normalizations:
        if n not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {n!r}")
    seed = integer("seed", seed)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ArgumentTypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be > 0 seconds (and finite), got {timeout}")
    if fail_rank is not None:
        fail_rank = integer("fail_rank", fail_rank, low=0, high=world_size - 1)
    deal(len(lengths), ga_steps=ga_steps, world_size=world_size)  # fail early
    model_cfg = {"context_length": max(64, max(lengths) + 1)}
    start, wall = time.perf_counter(), time.time()
    with tempfile.TemporaryDirectory(prefix="lossviz-ddp-") as out_dir:
        cfg = {
            "port": free_port(),
            "world_size": world_size,
            "timeout": float(timeout),
            "fail_rank": fail_rank,
            "model": model_cfg,
            "lengths": lengths,
            "seed": seed,
            "ga_steps": ga_steps,
            "reduction": reduction,
            "normalizations": list(normalizations),
        }
        ctx = mp.start_processes(
            _worker, args=(cfg, out_dir), nprocs=world_size, join=False, start_method="spawn"
        )
        pids = ctx.pids()
        try:
            deadline = time.monotonic() + timeout
            files = [os.path.join(out_dir, f"rank{r}.pt") for r in range(world_size)]
            while not ctx.join(timeout=0.05):
                if all(os.path.exists(f) for f in files):
                    break  # every result is in; no need to wait for interpreters to shut down
                if time.monotonic() > deadline:
                    raise DistributedRunError(
                        f"the {world_size}-process group did not finish within {timeout:g} s "
                        "(a rank is stuck, e.g. waiting in an all-reduce); every rank was ended",
                        pids,
                    )
        except mp.ProcessRaisedException as err:
            first = str(err).strip().splitlines()[-1]
            raise DistributedRunError(
                f"rank {err.error_index} of {world_size} failed, so the whole group was ended: "
                f"{first}",
                pids,
            ) from err
        except mp.ProcessExitedException as err:
            raise DistributedRunError(
                f"rank {err.error_index} of {world_size} exited with code {err.exit_code} before "
                "running its step, so the whole group was ended. From a plain script, call "
                'run_ddp under `if __name__ == "__main__":` (the ranks are started with '
                "'spawn', which imports your script again in each rank)",
                pids,
            ) from err
        finally:
            _end_all(ctx.processes)
        per_rank = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(world_size)]
    times = [g["times"] for g in per_rank]
    phases = {
        "start_processes": max(t["entered"] for t in times) - wall,
        "join_group": max(t["joined"] for t in times) - max(t["entered"] for t in times),
        "ddp_setup_ga_allreduce": max(t["done"] for t in times) - max(t["joined"] for t in times),
    }
    batch = token_batch(lengths, vocab_size=TinyConfig().vocab_size, seed=seed)
    model = TinyCausalLM(TinyConfig(**model_cfg))
    mask = batch.loss_mask()
    grads, predicted, diff = {}, {}, {}
    with torch_threads(1):
        for n in normalizations:
            grads[n] = torch.stack([g["grads"][n] for g in per_rank])
            W = accumulation_weights(
                mask,
                ga_steps=ga_steps,
                world_size=world_size,
                reduction=reduction,
                normalize=n,
            )
            predicted[n] = weighted_grad(model, batch, W)
            diff[n] = float((grads[n] - predicted[n]).abs().max())
    seconds = time.perf_counter() - start
    return {
        "grads": grads,
        "predicted": predicted,
        "max_abs_diff": diff,
        "seconds": seconds,
        "phases": phases,
        "pids": pids,
    }
