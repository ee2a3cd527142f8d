"""The real third-party trainers, run for measurement: the only place lossviz imports them.

Every module here runs or imports a training library (transformers, accelerate, TRL, datasets,
tokenizers, verl, ...) and needs the ``trainers`` extra (``pip install 'lossviz[trainers]'``);
nothing else in the package imports those libraries, so ``import lossviz`` works without them.

- :mod:`.tiny`: a tiny model from a config and a tokenizer built in memory (nothing downloaded).
- :mod:`.quiet`: the one quiet one-step CPU setup (arguments, trainer, thread) every run here uses.
- :mod:`.hf_trainer`: one real transformers ``Trainer`` step under :func:`lossviz.probe`, on one
  or several gloo processes.
- :mod:`.hf_eval`: the ``Trainer``'s evaluation loss.
- :mod:`.vlm`: a vision-language model (Qwen2.5-VL) in the ``Trainer`` and in TRL's SFT, and the
  settings that restore the token mean.
- :mod:`.moe`: a mixture of experts (Mixtral) in the ``Trainer``: the router aux loss's coefficient.
- :mod:`.trl_sft`, :mod:`.trl_grpo`: TRL's ``SFTTrainer`` and ``GRPOTrainer`` losses.
- :mod:`.trl_probe`: TRL's default SFT step (a fused LM head, no logits) under the probe.
- :mod:`.verl_agg`: verl's ``agg_loss``, read from its own source.
- :mod:`.versions`: the same ``Trainer`` step on several released transformers versions.

The app layer (``lossviz.commands``) and the explorers that run a real step call into this
folder; the math, plots and experiments never do.
"""

from __future__ import annotations

import importlib.util

__all__ = ["missing"]


def missing(*packages: str) -> list[str]:
    """The names among ``packages`` that are not installed (an empty list when all are)."""
    return [p for p in packages if importlib.util.find_spec(p) is None]
