"""TRL's ``SFTTrainer`` measured: which tokens one real training step trains, and with what weight.

TRL 1.16.0's SFT forward is a fused LM head (``add_fused_lm_head``): it returns each label's log-prob
``logp[b, t]`` and never the ``[B, T, V]`` logits that :func:`lossviz.probe.probe` reads. The chain
rule gives the same number the probe would: for ``l = -w * logp_y`` the logits' gradient is
``w (p - e_y)``, so ``W = <g, p - e_y> / ||p - e_y||^2 = -dL/d logp``. :class:`SFTMeter` runs one step
of ``trainer.train()`` (learning rate 0) and reads ``-dL/d logp`` at every label position; a position
whose label is ``-100`` has a constant log-prob and weight 0.

    meter = SFTMeter()
    step = meter.run([{"prompt": "the cat", "completion": " sat on a mat"}])
    step.W          # [B, T] aligned to step.labels: 1/N on the completion tokens and the EOS

``SFTConfig`` defaults to ``bf16=True`` (on a CPU too), so the forward runs under bf16 autocast: a
token mean's weights do not depend on it, DFT's ``p`` does (pass ``bf16=False`` for float32).
Needs the ``trainers`` extra; tiny Qwen2 from a config, tokenizer in memory (:mod:`lossviz.trainers.tiny`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..tokenizer import FILLER_WORDS
from .quiet import one_thread, quiet_args, quiet_trainer
from .tiny import CHATML_TEMPLATE, tiny_model, tiny_tokenizer

__all__ = ["SFTMeter", "SFTStep"]


@dataclass(frozen=True)
class SFTStep:
    """One SFT micro-batch as the model saw it, and each label's weight (all ``[B, T]``).

    ``W[b, t]`` and ``p[b, t]`` (the model's probability of the label) belong to ``labels[b, t]``;
    column 0 is never scored. ``position_ids`` is set under padding-free / packing.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    W: torch.Tensor
    p: torch.Tensor
    loss: float
    position_ids: torch.Tensor | None

    @property
    def trained(self) -> torch.Tensor:
        """``[B, T]`` bool: the labels TRL trains (not ``-100``, and not column 0, which nothing scores)."""
        out = self.labels != -100
        out[:, 0] = False
        return out


class SFTMeter:
    """Runs one ``SFTTrainer`` step on a tiny model and measures each label's weight."""

    def __init__(self, seed: int = 0) -> None:
        self.tokenizer = tiny_tokenizer(FILLER_WORDS)
        self.seed = seed

    def tokens(self, ids) -> list[str]:
        """The token strings of ``ids``."""
        return self.tokenizer.convert_ids_to_tokens([int(i) for i in ids])

    def run(self, rows: list[dict], chat_template: str = CHATML_TEMPLATE, **config) -> SFTStep:
        """One step on ``rows`` (one micro-batch: ``per_device_train_batch_size = len(rows)``).

        ``config``: ``SFTConfig`` fields (``assistant_only_loss``, ``completion_only_loss``, ``packing``,
        ``padding_free``, ``loss_type``, ...). Errors TRL raises at construction propagate unchanged.
        """
        import tempfile
        import warnings

        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        self.tokenizer.chat_template = chat_template
        model = tiny_model(len(self.tokenizer), seed=self.seed)
        seen: dict = {}

        def before(module, args, kwargs):
            seen["inputs"] = {
                k: v.detach() for k, v in kwargs.items() if isinstance(v, torch.Tensor)
            }

        def after(module, args, out):
            if out.log_probs.requires_grad:
                seen["out"] = out
                out.log_probs.register_hook(lambda g: seen.__setitem__("grad", g.detach()))

        hooks = [
            model.register_forward_pre_hook(before, with_kwargs=True),
            model.register_forward_hook(after),
        ]
        settings = {"per_device_train_batch_size": len(rows), **config}
        try:
            with one_thread(), tempfile.TemporaryDirectory(prefix="lossviz-sft-") as out_dir:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    trainer = quiet_trainer(
                        SFTTrainer,
                        model=model,
                        args=quiet_args(SFTConfig, output_dir=out_dir, **settings),
                        train_dataset=Dataset.from_list(rows),
                        processing_class=self.tokenizer,
                    )
                    result = trainer.train()
        finally:
            for h in hooks:
                h.remove()
        inputs, out = seen["inputs"], seen["out"]
        labels = inputs["labels"]
        # log_probs[b, t] scores labels[b, t + 1]; a -100 label's log-prob is a constant 0
        scored = out.label_mask.to(torch.float64)
        w = -seen["grad"].to(torch.float64) * scored
        p = out.log_probs.detach().to(torch.float64).exp() * scored
        pad = torch.zeros_like(w[:, :1])
        return SFTStep(
            input_ids=inputs["input_ids"],
            labels=labels,
            W=torch.cat([pad, w], dim=1),
            p=torch.cat([pad, p], dim=1),
            loss=float(result.training_loss),
            position_ids=inputs.get("position_ids"),
        )
