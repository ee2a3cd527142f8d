"""The one place that knows which devices torch can use here, and how to seed everything."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["available_devices", "default_device", "describe_devices", "resolve_device", "seed_all"]
__all__ += ["torch_threads"]


def available_devices() -> list[str]:
    """Usable devices, CPU first: ``["cpu", "cuda:0", ..., "mps"]`` (only those present)."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def default_device() -> str:
    """The first accelerator if there is one, else ``"cpu"``."""
    found = available_devices()
    return found[1] if len(found) > 1 else "cpu"


def describe_devices() -> str:
    """One line for a learner: which devices exist, and what to expect when only the CPU does."""
    found = available_devices()
    if len(found) == 1:
        return "Only the CPU is available here (no CUDA or MPS device): every result is computed on it."
    names = []
    for d in found[1:]:
        if d.startswith("cuda"):
            names.append(f"{d} ({torch.cuda.get_device_name(int(d.split(':')[1]))})")
        else:
            names.append(d)
    return "Devices: cpu, " + ", ".join(names)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> the default device; an unavailable one gets a ``ValueError`` listing the choices."""
    if device is None:
        return torch.device(default_device())
    dev = torch.device(device)
    name = dev.type if dev.index is None or dev.type != "cuda" else f"cuda:{dev.index}"
    if name == "cuda":
        name = "cuda:0"
    if name not in available_devices():
        raise ValueError(
            f"device {str(device)!r} is not available here; choose one of {available_devices()}"
        )
    return dev


def seed_all(seed: int = 123) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); returns a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: as they are), then restore the count.

    The tiny models here compute a few hundred numbers per operation: a thread pool costs more
    than the work, and on a busy machine its threads fighting for the cores turn 15 ms steps into
    0.8 s ones; one thread also fixes the float rounding a run can be compared by.
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
