"""One epoch of PyTorch Lightning's automatic optimization under :func:`lossviz.probe.probe`.

A ``LightningModule`` whose ``training_step`` returns the tiny Llama's own loss (the token mean of
its micro-batch), trained by ``pytorch_lightning.Trainer(accumulate_grad_batches=K)`` over the
samples of :func:`lossviz.measured_step.samples` in order (a ``SequentialSampler``; with ``R``
ranks Lightning's ``DistributedSampler`` deals sample ``i`` to rank ``i % R``). What Lightning 2.6
does with that loss, read from its source (``loops/optimization/automatic.py``,
``loops/training_epoch_loop.py``) and measured here:

- every ``training_step`` loss is divided by the configured ``accumulate_grad_batches`` ``K``
  (``ClosureResult.from_training_step_output(..., normalize=K)``): no token is counted, so a
  micro-batch's tokens weigh ``1 / (K n_k)`` (lossviz's ``naive`` model);
- the optimizer steps on the last batch of an epoch, and that short window's losses are still
  divided by ``K``, not by the batches it holds (the step's total weight is ``k / K < 1``;
  https://github.com/Lightning-AI/pytorch-lightning/issues/19987); an epoch shorter than ``K``
  batches is one such short window, and 2.6.6 says nothing about it
  (https://github.com/Lightning-AI/pytorch-lightning/issues/21808);
- with ``R`` ranks (``strategy="ddp"``, gloo on the CPU) DDP averages the gradients: ``1 / R``;
  Lightning's ``DistributedSampler`` shuffles the training set even when the loader does not.

No token is counted (https://github.com/Lightning-AI/pytorch-lightning/issues/20350; pull request
21386 proposes a count).

Settings: ``automatic`` returns the model's own loss. ``token_count`` is a fix written as a user
would: before the epoch, count the trained tokens of every window (``labels[..., 1:] != -100`` over
its ``K`` batches, all-reduced over the ranks), and return the summed token loss times ``K x R``
divided by that count (the model's ``num_items_in_batch``), which undoes Lightning's ``/ K`` and
DDP's ``/ R``: every token of the step weighs ``1 / N``, the short last window included.

Needs the ``trainers`` extra (pytorch-lightning, transformers). The import of Lightning happens
inside :func:`run_case` only.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["SETTINGS", "run_case"]

SETTINGS = ("automatic", "token_count")


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_case(cfg: dict) -> dict:
    """One ``Trainer.fit`` epoch of ``cfg`` in this process, under the probe.

    ``cfg``: ``{"lengths", "per_device_batch_size", "ga_steps", "world_size", "seed"}``; with
    ``world_size > 1`` this process is one rank (``RANK``/``LOCAL_RANK``/``MASTER_PORT`` set by
    :func:`lossviz.trainers.frameworks.measure_runs`). Returns ``{"micro_batches": [{"rank", "step",
    "labels", "W", "position_ids"}...], "grads": [flat parameter gradient at each optimizer step],
    "max_residual", "optimizer_steps", "version", "warnings"}`` (lists, JSON-ready).
    """
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader

    from ..measured_step import VOCAB, samples
    from ..probe import probe
    from .frameworks import grad_recorder, pad_collate, probe_result
    from .tiny import tiny_llama

    if cfg["setting"] not in SETTINGS:
        raise ValueError(f"lightning setting must be one of {SETTINGS}, got {cfg['setting']!r}")
    _quiet_lightning()
    R, K = cfg["world_size"], cfg["ga_steps"]
    model = tiny_llama(VOCAB, cfg["seed"])
    count_tokens = cfg["setting"] == "token_count"

    class _Module(pl.LightningModule):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.window_tokens = None

        def on_train_epoch_start(self):
            if not count_tokens:
                return
            counts: list[int] = []
            for i, batch in enumerate(self.trainer.train_dataloader):  # this epoch's order
                if i % K == 0:
                    counts.append(0)
                counts[-1] += int((batch["labels"][:, 1:] != -100).sum())
            self.window_tokens = torch.tensor(counts, dtype=torch.float64)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(self.window_tokens)

        def training_step(self, batch, batch_idx):
            if not count_tokens:
                return self.inner(**batch).loss  # the micro-batch's own token mean
            n = self.window_tokens[batch_idx // K].item()
            loss = self.inner(**batch, num_items_in_batch=n).loss  # summed loss / n
            return loss * K * self.trainer.world_size

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    loader = DataLoader(
        samples(cfg["lengths"], cfg["seed"]),
        batch_size=cfg["per_device_batch_size"],
        shuffle=False,
        collate_fn=pad_collate,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=R,
        strategy="ddp" if R > 1 else "auto",
        accumulate_grad_batches=cfg["ga_steps"],
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with probe(model) as rec, grad_recorder(model) as grads:
            trainer.fit(_Module(model), train_dataloaders=loader)
    said = sorted({str(w.message).splitlines()[0] for w in caught})
    return probe_result(rec, grads, version=pl.__version__, warnings=said)
