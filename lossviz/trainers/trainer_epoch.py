"""One epoch of the transformers ``Trainer`` under :func:`lossviz.probe.probe` (for the table).

The same setup as :mod:`lossviz.trainers.hf_trainer` (tiny Llama, samples in order, the model's
own loss with the Trainer's ``num_items_in_batch``), for a whole epoch instead of one step, so a
short last window is measured too: the Trainer pre-loads each update's batches and counts their
tokens, so the last window is a token mean of its own tokens (``global``). Gradient clipping is
off (``max_grad_norm=0``) so the parameters' gradient at the step is the plain ``sum(W l)``.
"""

from __future__ import annotations

import dataclasses
import tempfile

__all__ = ["run_case"]


def run_case(cfg: dict) -> dict:
    """One ``Trainer.train()`` epoch of ``cfg`` in this process (``cfg["setting"] == "ga"``).

    Returns what :func:`lossviz.trainers.frameworks.probe_result` records.
    """
    import transformers
    from torch.utils.data import SequentialSampler
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback

    from ..measured_step import VOCAB, samples
    from ..probe import probe
    from .frameworks import grad_recorder, pad_collate, probe_result
    from .hf_trainer import _training_args
    from .tiny import tiny_llama

    if cfg["setting"] != "ga":
        raise ValueError(
            f"the Trainer's epoch is measured for setting 'ga', got {cfg['setting']!r}"
        )
    model = tiny_llama(VOCAB, cfg["seed"])

    class _Trainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):  # fixed order, for the measurement
            return SequentialSampler(self.train_dataset)

    with tempfile.TemporaryDirectory(prefix="lossviz-trainer-") as out_dir:
        args, _ = _training_args(out_dir, dict(cfg, average_tokens_across_devices=None))
        args = dataclasses.replace(args, max_steps=-1, num_train_epochs=1, max_grad_norm=0.0)
        trainer = _Trainer(
            model=model,
            args=args,
            train_dataset=samples(cfg["lengths"], cfg["seed"]),
            data_collator=pad_collate,
        )
        trainer.remove_callback(PrinterCallback)
        with probe(model) as rec, grad_recorder(model) as grads:
            trainer.train()
    return probe_result(
        rec,
        grads,
        version=transformers.__version__,
        average_tokens_across_devices=getattr(args, "average_tokens_across_devices", None),
    )
