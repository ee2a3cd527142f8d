"""The real transformers ``Trainer.evaluate`` measured: which mean its ``eval_loss`` is.

One ``evaluate()`` of the installed ``Trainer`` on the one-layer Llama of
:mod:`lossviz.trainers.hf_trainer` (built from a config, random token samples, nothing downloaded), in
order (``SequentialSampler``). Beside it, the same model scores every sample's tokens on its own, so
the reported number can be compared with :func:`lossviz.evaluation.eval_loss` under each weighting.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["measure_eval"]


def measure_eval(
    lengths: Sequence[int], *, batch_size: int, seed: int = 0, logit_scale: float = 1.0
) -> dict:
    """``Trainer.evaluate()``'s ``eval_loss`` and each eval batch's scored token losses.

    Sample b has ``lengths[b]`` scored tokens (:func:`lossviz.measured_step.samples`).
    ``logit_scale`` multiplies the LM head's weights: an untrained model scores every token near
    ``log V``; a sharper one spreads the token losses, so that batch means differ. Returns
    ``{"eval_loss", "batch_losses": [1-D float64 tensors], "sizes": samples per batch,
    "transformers"}``.
    """
    import tempfile

    import transformers
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    from ..batching import _check_lengths
    from ..checks import number, positive_int
    from ..measured_step import VOCAB, samples
    from .hf_trainer import _pad_collate
    from .quiet import quiet_args, quiet_trainer
    from .tiny import tiny_llama

    lengths = _check_lengths(lengths, allow_zero=False)
    batch_size = positive_int("batch_size", batch_size)
    data = samples(lengths, seed)
    model = tiny_llama(VOCAB, seed).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(number("logit_scale", logit_scale, low=0.0))

    class _Trainer(Trainer):
        def _get_eval_sampler(self, *args, **kwargs):  # fixed order, for the comparison
            return SequentialSampler(self.eval_dataset)

    with tempfile.TemporaryDirectory(prefix="lossviz-eval-") as out_dir:
        args = quiet_args(
            output_dir=out_dir,
            per_device_eval_batch_size=batch_size,
            remove_unused_columns=False,
        )
        trainer = quiet_trainer(
            _Trainer, model=model, args=args, eval_dataset=data, data_collator=_pad_collate
        )
        metrics = trainer.evaluate()
    per_sample = []
    with torch.no_grad():
        for s in data:
            ids = torch.tensor([s["input_ids"]])
            logits = model(input_ids=ids).logits[0, :-1].double()
            per_sample.append(
                torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
            )
    batches = [per_sample[i : i + batch_size] for i in range(0, len(data), batch_size)]
    return {
        "eval_loss": float(metrics["eval_loss"]),
        "batch_losses": [torch.cat(b) for b in batches],
        "sizes": [len(b) for b in batches],
        "transformers": transformers.__version__,
    }
