"""Three accelerate training loops under :func:`lossviz.probe.probe`: plain, the token-count recipe, fixed.

``accumulate``, the loop accelerate's gradient-accumulation guide starts from::

    for batch in loader:
        with accelerator.accumulate(model):
            loss = model(**batch).loss            # the micro-batch's own token mean
            accelerator.backward(loss)            # divides by gradient_accumulation_steps K
            optimizer.step(); optimizer.zero_grad()   # only acts when accelerate syncs

``Accelerator.backward`` divides every loss by the configured ``K`` (``accelerator.py``), in the
last window too; with ``sync_with_dataloader`` (the default) the end of the data forces a step,
so a short last window of ``k < K`` batches carries the total weight ``k / K`` (lossviz's
``naive_configured``).

``recipe``: our own code following the steps of accelerate's documented recipe for variable-size
samples (the section "Gradient accumulation on training samples of variable size" of
https://huggingface.co/docs/accelerate/usage_guides/gradient_accumulation, and the example
``examples/by_feature/gradient_accumulation_for_autoregressive_models.py`` of
https://github.com/huggingface/accelerate at v1.16.0): pre-load the ``K`` batches of an update
(the remainder in the last), count ``labels.ne(-100)`` over them, gather the count over the
processes, pass it to the model as ``num_items_in_batch`` and multiply each loss by
``K x num_processes`` before ``accelerator.backward``. The count is taken on the labels the model
receives, before the model's causal shift, so each row's first label, which no position
predicts, is counted too: ``W = 1 / (N + rows)`` (lossviz's ``global_overcount``; transformers
fixed the same over-count of its own in https://github.com/huggingface/transformers/pull/46204).

``recipe_shifted`` is the one-line fix: count ``labels[..., 1:] != -100``, the labels the
model's loss scores (``W = 1 / N``). Clipping (the example's ``clip_grad_norm_``) is left out of
both: it scales the whole step and no token's share of it.

Needs the ``trainers`` extra (accelerate, transformers).
"""

from __future__ import annotations

import contextlib
import math

__all__ = ["LOOPS", "run_case"]

LOOPS = ("accumulate", "recipe", "recipe_shifted")


def _reset_state() -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _plain_loop(accelerator, model, optimizer, loader) -> None:
    for batch in loader:
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()


def _count(batch, shifted: bool):
    labels = batch["labels"][..., 1:] if shifted else batch["labels"]
    return labels.ne(-100).sum()


def _recipe_loop(accelerator, model, optimizer, loader, K: int, shifted: bool = False) -> None:
    batches = len(loader)
    remainder = batches % K or K
    updates = math.ceil(batches / K)
    iterator = iter(loader)
    for update in range(updates):
        window = [next(iterator) for _ in range(K if update != updates - 1 else remainder)]
        count = sum(_count(batch, shifted) for batch in window)  # the documented count: unshifted
        count = accelerator.gather(count).sum().item()
        for i, batch in enumerate(window):
            last = i == len(window) - 1
            sync = (
                contextlib.nullcontext if last or accelerator.num_processes == 1 else model.no_sync
            )
            with sync():
                loss = model(**batch, use_cache=False, num_items_in_batch=count).loss
                accelerator.backward(loss * K * accelerator.num_processes)
        optimizer.step()
        optimizer.zero_grad()


def run_case(cfg: dict) -> dict:
    """One epoch of ``cfg["setting"]`` (``accumulate`` or ``recipe``) in this process, under the probe.

    ``cfg``: ``{"setting", "lengths", "per_device_batch_size", "ga_steps", "world_size", "seed"}``;
    with ``world_size > 1`` this process is one rank (accelerate reads ``RANK``/``WORLD_SIZE``).
    Returns what :func:`lossviz.trainers.frameworks.probe_result` records.
    """
    import accelerate
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from ..measured_step import VOCAB, samples
    from ..probe import probe
    from .frameworks import grad_recorder, pad_collate, probe_result
    from .tiny import tiny_llama

    if cfg["setting"] not in LOOPS:
        raise ValueError(f"accelerate loop must be one of {LOOPS}, got {cfg['setting']!r}")
    K = cfg["ga_steps"]
    _reset_state()
    try:
        accelerator = Accelerator(cpu=True, gradient_accumulation_steps=K)
        model = tiny_llama(VOCAB, cfg["seed"])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        loader = DataLoader(
            samples(cfg["lengths"], cfg["seed"]),
            batch_size=cfg["per_device_batch_size"],
            shuffle=False,
            collate_fn=pad_collate,
        )
        with probe(model) as rec, grad_recorder(model) as grads:
            wrapped, opt, dl = accelerator.prepare(model, optimizer, loader)
            if cfg["setting"] == "accumulate":
                _plain_loop(accelerator, wrapped, opt, dl)
            else:
                _recipe_loop(accelerator, wrapped, opt, dl, K, cfg["setting"] == "recipe_shifted")
        return probe_result(rec, grads, version=accelerate.__version__)
    finally:
        _reset_state()
