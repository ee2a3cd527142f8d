"""The shape of one optimizer step: how many samples it takes and which rank and micro-batch holds each.

One step takes ``B x K x R`` samples: ``per_device_batch_size`` (B) per forward pass,
``ga_steps`` (K) micro-batches accumulated per rank, ``world_size`` (R) data-parallel ranks. Who
gets which sample is a *dealing rule*, and the two common ones differ:

- ``"trainer"``: the transformers ``Trainer`` through accelerate (``BatchSamplerShard``, checked
  in accelerate 1.16 / transformers 5.24): the sampler's order is cut into batches of B
  consecutive samples and batch j goes to rank ``j % R`` as its micro-batch ``j // R``. Rank p
  gets samples ``[p*B, p*B + B)`` of each chunk of ``R*B``: whole batches, not single samples.
- ``"sampler"``: ``torch.utils.data.DistributedSampler(shuffle=False)``: sample i goes to rank
  ``i % R``; each rank cuts its share into K consecutive micro-batches whose sizes differ by at
  most one, the larger first (a hand-written DDP loop over such a sampler).

A dealing is a plan ``plan[p][k]``: the sample indices of micro-batch k on rank p.
``trainer`` and ``sampler`` agree when ``R = 1`` or ``B = 1`` (8 samples, B=2, K=2, R=2: trainer
``[[[0, 1], [4, 5]], [[2, 3], [6, 7]]]``, sampler ``[[[0, 2], [4, 6]], [[1, 3], [5, 7]]]``).
"""

from __future__ import annotations

from collections.abc import Sequence

from .checks import positive_int

__all__ = [
    "DEALINGS",
    "check_step",
    "deal",
    "fill_step",
    "locate",
    "sampler_dealing",
    "step_samples",
    "trainer_dealing",
]

DEALINGS = ("trainer", "sampler")


def step_samples(per_device_batch_size: int, ga_steps: int, world_size: int = 1) -> int:
    """``B * K * R``: the samples one optimizer step takes (each size checked to be an int >= 1)."""
    b = positive_int("per_device_batch_size", per_device_batch_size)
    k = positive_int("ga_steps", ga_steps)
    r = positive_int("world_size", world_size)
    return b * k * r


def check_step(
    num_samples: int,
    *,
    per_device_batch_size: int,
    ga_steps: int,
    world_size: int = 1,
    what: str = "lengths",
) -> int:
    """``num_samples`` when it is ``B * K * R``; a ``ValueError`` that says the sizes and the fix else."""
    need = step_samples(per_device_batch_size, ga_steps, world_size)
    if num_samples != need:
        raise ValueError(
            f"one optimizer step takes per_device_batch_size x ga_steps x world_size = "
            f"{per_device_batch_size} x {ga_steps} x {world_size} = {need} samples, but {what} "
            f"gave {num_samples}; give {need}{' lengths' if what == 'lengths' else ''} or change "
            "the sizes"
        )
    return need


def fill_step(lengths: Sequence, num_samples: int, *, cut: bool = True) -> tuple[list, str]:
    """``lengths`` repeated in order to exactly ``num_samples`` items, and a note ("" if unchanged).

    ``fill_step([3, 7], 5) == ([3, 7, 3, 7, 3], "the 2 lengths repeated to fill the step's 5
    samples")``. A longer list keeps its first ``num_samples`` (an explorer whose sliders just made
    the step smaller); ``cut=False`` (a command line) makes that an error instead.
    """
    values = list(lengths)
    if not values:
        raise ValueError("give at least one length to fill the step with")
    n = positive_int("num_samples", num_samples)
    if len(values) == n:
        return values, ""
    if len(values) > n and not cut:
        raise ValueError(
            f"one optimizer step takes {n} samples, but {len(values)} lengths were given; "
            f"give at most {n} (a shorter list is repeated to fill the step)"
        )
    filled = [values[i % len(values)] for i in range(n)]
    how = "repeated to fill" if len(values) < n else "cut to"
    return filled, f"the {len(values)} lengths {how} the step's {n} samples"


def _order(num_samples: int, group_by: Sequence | None) -> list[int]:
    order = list(range(num_samples))
    if group_by is not None:
        keys = list(group_by)
        if len(keys) != num_samples:
            raise ValueError(
                f"group_by needs one key per sample ({num_samples}), got {len(keys)} keys"
            )
        order.sort(key=keys.__getitem__)
    return order


def trainer_dealing(
    num_samples: int,
    *,
    per_device_batch_size: int,
    ga_steps: int,
    world_size: int = 1,
    group_by: Sequence | None = None,
) -> list[list[list[int]]]:
    """``plan[p][k]``: the transformers ``Trainer``'s (accelerate's) dealing of one step.

    Batch j (samples ``[j*B, j*B + B)`` of the order) goes to rank ``j % R`` as its micro-batch
    ``j // R``; needs ``num_samples = B * K * R``.
    ``trainer_dealing(8, per_device_batch_size=1, ga_steps=4, world_size=2)`` ->
    ``[[[0], [2], [4], [6]], [[1], [3], [5], [7]]]``.
    """
    check_step(
        num_samples,
        per_device_batch_size=per_device_batch_size,
        ga_steps=ga_steps,
        world_size=world_size,
        what="num_samples",
    )
    order = _order(num_samples, group_by)
    b = per_device_batch_size
    plan: list[list[list[int]]] = [[] for _ in range(world_size)]
    for j in range(ga_steps * world_size):
        plan[j % world_size].append(order[j * b : (j + 1) * b])
    return plan


def sampler_dealing(
    num_samples: int,
    *,
    ga_steps: int,
    world_size: int = 1,
    group_by: Sequence | None = None,
) -> list[list[list[int]]]:
    """``plan[p][k]``: ``DistributedSampler``'s dealing (sample i to rank ``i % R``), then K
    consecutive micro-batches per rank, sizes differing by at most one, larger first.

    Any ``num_samples >= R`` (a micro-batch is empty only when a rank has fewer samples than K).
    ``sampler_dealing(5, ga_steps=2, world_size=2)`` -> ``[[[0, 2], [4]], [[1], [3]]]``.
    ``group_by``: one sort key per sample; samples are dealt in the (stable) order of their keys,
    so similar lengths share a micro-batch, as transformers' ``group_by_length`` arranges them.
    """
    n = positive_int("num_samples", num_samples)
    K = positive_int("ga_steps", ga_steps)
    R = positive_int("world_size", world_size)
    if n < R:
        raise ValueError(
            f"world_size={R} needs at least {R} samples (one per rank), got {n}: "
            "a rank without data cannot join DDP's gradient all-reduce"
        )
    order = _order(n, group_by)
    plan = []
    for r in range(R):
        mine = order[r::R]
        size, extra = divmod(len(mine), K)
        cuts = [0]
        for k in range(K):
            cuts.append(cuts[-1] + size + (1 if k < extra else 0))
        plan.append([mine[cuts[k] : cuts[k + 1]] for k in range(K)])
    return plan


def deal(
    num_samples: int,
    *,
    ga_steps: int,
    world_size: int = 1,
    dealing: str = "sampler",
    group_by: Sequence | None = None,
) -> list[list[list[int]]]:
    """``plan[p][k]`` under a named dealing rule (:data:`DEALINGS`).

    ``"trainer"`` needs ``num_samples`` to be a multiple of ``ga_steps * world_size`` (the
    per-device batch size is the quotient); ``"sampler"`` takes any ``num_samples >= world_size``.
    """
    if dealing not in DEALINGS:
        raise ValueError(f"dealing must be one of {DEALINGS}, got {dealing!r}")
    if dealing == "sampler":
        return sampler_dealing(
            num_samples, ga_steps=ga_steps, world_size=world_size, group_by=group_by
        )
    n = positive_int("num_samples", num_samples)
    per_step = positive_int("ga_steps", ga_steps) * positive_int("world_size", world_size)
    if n % per_step:
        raise ValueError(
            f"the Trainer's dealing gives every rank ga_steps whole batches of the same size, so "
            f"num_samples must be a multiple of ga_steps x world_size = {per_step}, got {n}; "
            "use dealing='sampler' for uneven micro-batches"
        )
    return trainer_dealing(
        n,
        per_device_batch_size=n // per_step,
        ga_steps=ga_steps,
        world_size=world_size,
        group_by=group_by,
    )


def locate(plan: list[list[list[int]]]) -> list[tuple[int, int]]:
    """``where[i] = (p, k)``: the rank and micro-batch that hold sample i; each sample once."""
    where: dict[int, tuple[int, int]] = {}
    for p, rank in enumerate(plan):
        for k, rows in enumerate(rank):
            for i in rows:
                if i in where:
                    raise ValueError(f"sample {i} is dealt twice: {where[i]} and {(p, k)}")
                where[i] = (p, k)
    if sorted(where) != list(range(len(where))):
        missing = sorted(set(range(max(where, default=-1) + 1)) - set(where))
        raise ValueError(
            f"the plan must deal every sample exactly once; samples {missing} are missing"
        )
    return [where[i] for i in range(len(where))]
