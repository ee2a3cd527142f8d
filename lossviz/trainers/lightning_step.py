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
  divided by ``K``, not by the batches it holds (the step's total weight is ``k / K < 1``); an epoch
  shorter than ``K`` batches is one such short window (Lightning issue 21808);
- with ``R`` ranks (``strategy="ddp"``, gloo on the CPU) DDP averages the gradients: ``1 / R``.

Needs the ``trainers`` extra (pytorch-lightning, transformers). The import of Lightning happens
inside :func:`run_case` only.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["run_case"]


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

    _quiet_lightning()
    R = cfg["world_size"]
    model = tiny_llama(VOCAB, cfg["seed"])

    class _Module(pl.LightningModule):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def training_step(self, batch, batch_idx):
            return self.inner(**batch).loss  # the micro-batch's own token mean

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
