"""TRL's default SFT step under :func:`lossviz.probe.probe`: no logits anywhere, the probe still reads W.

Since TRL 1.7, ``SFTTrainer`` adds a fused LM head (``trl.trainer.utils.add_fused_lm_head``): its
forward returns ``FusedCausalLMOutput`` (each label's ``log_probs``, ``entropy``, ``label_mask``)
and never the ``[B, T, V]`` logits. ``lv.probe(model)`` reads ``W = −∂L/∂log p_y`` there, or, with
``via="hidden"``, recovers ``W`` from the gradient at the hidden state entering the LM head.
:func:`sft_step` runs one optimizer step of TRL 1.16's default SFT path on a one-layer Llama built
from a config (tokenizer in memory, nothing downloaded) under one probe per path, and replays the
same micro-batches through the model's own (logits) forward under a third probe, so the three
paths can be compared on one step. Needs the ``trainers`` extra.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence

import torch

from ..devices import torch_threads
from ..probe import ProbeRecord, probe
from ..tokenizer import FILLER_WORDS
from .tiny import tiny_llama, tiny_tokenizer

__all__ = ["TEXTS", "sft_step"]

# language-modelling rows ("text"): every token after the first is trained
TEXTS = (
    "the cat sat on the mat",
    "w1 w2",
    "w3 w4 w5 w6 w7 w8 w9 w10 w11",
    "w12 w13 w14 w15",
)


def sft_step(
    texts: Sequence[str] = TEXTS,
    *,
    per_device_batch_size: int = 2,
    ga_steps: int = 2,
    vias: Sequence[str] = ("auto", "hidden"),
    replay_logits: bool = True,
    seed: int = 0,
    **config,
) -> dict:
    """One ``SFTTrainer.train()`` step (learning rate 0) under ``lv.probe(model, via=v)`` per ``v``.

    ``len(texts) == per_device_batch_size * ga_steps``. Returns ``{"records": {via: ProbeRecord},
    "logits": ProbeRecord | None, "inputs": [micro-batch kwargs], "N": trained tokens of the step,
    "trl": version}``; ``"logits"`` is the same micro-batches through the model's own forward
    (``loss = Σ CE / N``, as the Trainer's ``num_items_in_batch``), probed on the logits.
    ``config``: ``SFTConfig`` fields (TRL's defaults otherwise, ``bf16=True`` included).
    """
    import trl
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    if len(texts) != per_device_batch_size * ga_steps:
        raise ValueError(
            f"one step takes per_device_batch_size x ga_steps = "
            f"{per_device_batch_size * ga_steps} texts, got {len(texts)}"
        )
    disable_progress_bar()
    tok = tiny_tokenizer(FILLER_WORDS)
    model = tiny_llama(len(tok), seed)
    seen: list[dict] = []

    def keep(module, args, kwargs):
        if torch.is_grad_enabled():
            seen.append({k: v.detach() for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    settings = {
        "per_device_train_batch_size": per_device_batch_size,
        "gradient_accumulation_steps": ga_steps,
        "max_steps": 1,
        "learning_rate": 0.0,
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        "seed": seed,
        **config,
    }
    records: dict[str, ProbeRecord] = {}
    hook = model.register_forward_pre_hook(keep, with_kwargs=True)
    probes = [probe(model, via=v) for v in vias]
    try:
        with torch_threads(1), tempfile.TemporaryDirectory(prefix="lossviz-sft-") as out_dir:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer = SFTTrainer(
                    model=model,
                    args=SFTConfig(output_dir=out_dir, **settings),
                    train_dataset=Dataset.from_list([{"text": t} for t in texts]),
                    processing_class=tok,
                )
                trainer.remove_callback(PrinterCallback)  # it prints the run's metrics
                for v, p in zip(vias, probes, strict=True):
                    records[v] = p.__enter__()
                trainer.train()
    finally:
        for p in probes:
            p.__exit__(None, None, None)
        hook.remove()
    N = sum(int((mb["labels"][:, 1:] != -100).sum()) for mb in seen)
    logits = None
    if replay_logits:
        # the same micro-batches through the model's own forward: logits, then CE summed / N
        model.zero_grad(set_to_none=True)
        with torch_threads(1), probe(model, via="logits") as logits:
            for mb in seen:
                out = model(**mb, num_items_in_batch=N)
                out.loss.backward()
    return {"records": records, "logits": logits, "inputs": seen, "N": N, "trl": trl.__version__}
