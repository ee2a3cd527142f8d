"""A vision-language model in the transformers ``Trainer``: which weighting it gets, and the fixes.

The ``Trainer`` (transformers 5.24, ``trainer.py``) passes the step's token count
``num_items_in_batch`` to the model only when ``model_accepts_loss_kwargs`` is true, and decides it
once, at construction: the model's ``accepts_loss_kwargs`` attribute if it has one, else whether its
``forward`` takes ``**kwargs``. A class that declares ``accepts_loss_kwargs = False`` gets no count:
each micro-batch is its own token mean, then divided by the GA steps (the weighting before 4.46).
Many multimodal classes declare it (:func:`declared_no_loss_kwargs`); for some (PaliGemma, Gemma 3,
Qwen2-VL) only the inner ``*Model`` does, and the ``*ForConditionalGeneration`` the ``Trainer``
sees takes ``**kwargs`` and gets the count.

:func:`measure_vlm` runs real ``Trainer`` steps on a tiny Qwen2.5-VL built from a config
(text-only batches, :func:`lossviz.trainers.tiny.tiny_vlm`) under GA: as shipped, and with each
setting that restores the step's token mean:

- ``model_flag``: ``model.accepts_loss_kwargs = True`` before building the ``Trainer``;
- ``trainer_flag``: ``trainer.model_accepts_loss_kwargs = True`` after building it;
- ``loss_func``: ``Trainer(compute_loss_func=...)``, a loss that divides by ``num_items_in_batch``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

__all__ = [
    "FAMILIES",
    "VLM_SETUP",
    "declared_no_loss_kwargs",
    "measure_vlm",
    "measure_vlm_image",
    "measure_sft_vlm",
    "trainer_counts_tokens",
    "vlm_rows",
]

VLM_SETUP = {"lengths": [3, 7, 20, 5], "per_device_batch_size": 2, "ga_steps": 2}
FIXES = ("model_flag", "trainer_flag", "loss_func")
# model families (folders of transformers/models) whose classes the issue names
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "paligemma", "gemma3", "gemma3n", "gemma4")


def declared_no_loss_kwargs(families=FAMILIES) -> dict[str, list[str]]:
    """``{family: [class names]}``: the classes whose body sets ``accepts_loss_kwargs = False``.

    Read from the installed transformers' ``models/<family>/modeling_<family>.py`` source.
    """
    import transformers

    root = Path(transformers.__file__).parent / "models"
    out = {}
    for fam in families:
        path = root / fam / f"modeling_{fam}.py"
        if not path.exists():
            raise ValueError(f"transformers {transformers.__version__} has no model family {fam!r}")
        found, cls = [], None
        for line in path.read_text().splitlines():
            m = re.match(r"class (\w+)\(", line)
            if m:
                cls = m.group(1)
            elif line.strip().startswith("accepts_loss_kwargs = False") and cls:
                found.append(cls)
        out[fam] = found
    return out


def trainer_counts_tokens(model_class) -> tuple[bool, str]:
    """``(passes num_items_in_batch, why)``: the ``Trainer``'s rule (5.24) applied to a model class."""
    if hasattr(model_class, "accepts_loss_kwargs"):
        value = bool(model_class.accepts_loss_kwargs)
        return value, f"declares accepts_loss_kwargs = {value}"
    params = inspect.signature(model_class.forward).parameters.values()
    value = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)
    return value, "forward takes **kwargs" if value else "forward takes no **kwargs"


def measure_vlm(seed: int = 0, pythonpath: str | None = None) -> dict[str, dict]:
    """``{setting: measure() result}`` of one ``Trainer`` step on the tiny VLMs (:data:`VLM_SETUP`).

    Settings: ``qwen2_5_vl`` (as shipped), ``qwen2_5_vl+model_flag``, ``+trainer_flag``,
    ``+loss_func``, and ``qwen2_vl`` (as shipped). One process, one thread; ``pythonpath`` runs it
    in a subprocess on another transformers (:func:`lossviz.trainers.versions.install`).
    """
    import sys

    from .hf_trainer import measure_runs

    setup = dict(VLM_SETUP)
    lengths = setup.pop("lengths")
    names = ["qwen2_5_vl", *(f"qwen2_5_vl+{f}" for f in FIXES), "qwen2_vl"]
    runs = [{"case": "ga", "model": "vlm"}]
    runs += [{"case": f, "model": "vlm"} for f in FIXES]
    runs += [{"case": "ga", "model": "vlm_qwen2"}]
    python = sys.executable if pythonpath else None
    res = measure_runs(lengths, runs, seed=seed, pythonpath=pythonpath, python=python, **setup)
    return dict(zip(names, res, strict=True))


def _image_samples(lengths, seed: int) -> list[dict]:
    """Each sample: ``<vision_start>``, 4 image tokens, ``<vision_end>``, then ``n + 1`` text ids.

    The image positions carry label -100 (as a VLM collator masks them); the image is 2x2 patches of
    random pixels (``image_grid_thw = [1, 2, 2]``, 4 tokens with no spatial merge).
    """
    import torch

    from ..measured_step import samples
    from .tiny import IMAGE_TOKENS

    gen = torch.Generator().manual_seed(seed + 1)
    prefix = [IMAGE_TOKENS["vision_start_token_id"], *[IMAGE_TOKENS["image_token_id"]] * 4]
    prefix.append(IMAGE_TOKENS["vision_end_token_id"])
    out = []
    for s in samples(lengths, seed):
        out.append(
            {
                "input_ids": prefix + s["input_ids"],
                "labels": [-100] * len(prefix) + s["labels"],
                "pixel_values": torch.randn(4, 3 * 2 * 2, generator=gen),
                "image_grid_thw": torch.tensor([[1, 2, 2]]),
            }
        )
    return out


def _image_collate(features: list[dict]) -> dict:
    import torch

    from .hf_trainer import _pad_collate

    batch = _pad_collate(features)
    batch["pixel_values"] = torch.cat([f["pixel_values"] for f in features])
    batch["image_grid_thw"] = torch.cat([f["image_grid_thw"] for f in features])
    return batch


def measure_vlm_image(setting: str = "ga", seed: int = 0) -> dict:
    """One ``Trainer`` step of the tiny Qwen2.5-VL on samples that each hold an image (:data:`VLM_SETUP`).

    ``setting``: ``"ga"`` (as shipped) or ``"model_flag"``. Returns ``{"micro_batches": [per
    micro-batch: the weights of its trained tokens, row by row], "image_weight_max": the largest
    |W| on an image or padding position, "max_residual", "model_accepts_loss_kwargs"}``.
    """
    import tempfile

    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    from ..probe import probe
    from .quiet import one_thread, quiet_args, quiet_trainer
    from .tiny import tiny_vlm

    if setting not in ("ga", "model_flag"):
        raise ValueError(f"setting must be 'ga' or 'model_flag', got {setting!r}")
    model = tiny_vlm(seed)
    if setting == "model_flag":
        model.accepts_loss_kwargs = True

    class _Trainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):  # fixed order, for the measurement
            return SequentialSampler(self.train_dataset)

    with one_thread(), tempfile.TemporaryDirectory(prefix="lossviz-vlm-") as out_dir:
        trainer = quiet_trainer(
            _Trainer,
            model=model,
            args=quiet_args(
                output_dir=out_dir,
                per_device_train_batch_size=VLM_SETUP["per_device_batch_size"],
                gradient_accumulation_steps=VLM_SETUP["ga_steps"],
                remove_unused_columns=False,
            ),
            train_dataset=_image_samples(VLM_SETUP["lengths"], seed),
            data_collator=_image_collate,
        )
        with probe(model) as rec:
            trainer.train()
    tokens, off = [], 0.0
    for mb in rec.micro_batches:
        trained = mb.labels != -100
        trained[:, 0] = False  # nothing scores the first label
        W = mb.step_W
        tokens.append([W[b][trained[b]].tolist() for b in range(W.shape[0])])
        off = max(off, float(W[~trained].abs().max()))
    return {
        "micro_batches": tokens,
        "image_weight_max": off,
        "max_residual": rec.max_residual,
        "model_accepts_loss_kwargs": bool(trainer.model_accepts_loss_kwargs),
    }


# prompt-completion rows of 1, 5, 9 and 2 completion words (+ EOS): 2, 6 | 10, 3 trained tokens
SFT_ROWS = [
    {"prompt": "w1 w2", "completion": " w3"},
    {"prompt": "w1", "completion": " w4 w5 w6 w7 w8"},
    {"prompt": "w2", "completion": " w9 w10 w11 w12 w13 w14 w15 w16 w17"},
    {"prompt": "w5", "completion": " w6 w7"},
]


def measure_sft_vlm(model: str = "vlm", seed: int = 0) -> dict:
    """One TRL ``SFTTrainer`` step (batch 2, GA 2, float32) on the tiny Qwen2.5-VL or, ``model="llm"``, Qwen2.

    TRL's fused LM head returns each label's log-prob; a label's weight is ``-dL/d logp`` (as in
    :mod:`lossviz.trainers.trl_sft`). Returns ``{"micro_batches": [[(trained tokens, the row's
    summed weight, max - min weight within the row)...]...], "model_accepts_loss_kwargs", "trl"}``.
    """
    import tempfile
    import warnings

    import trl
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from .quiet import one_thread, quiet_args, quiet_trainer
    from .tiny import tiny_model, tiny_tokenizer, tiny_vlm

    if model not in ("vlm", "llm"):
        raise ValueError(f"model must be 'vlm' or 'llm', got {model!r}")
    tok = tiny_tokenizer()
    net = tiny_vlm(seed) if model == "vlm" else tiny_model(len(tok), seed=seed)
    seen: list[dict] = []

    def after(module, args, out):
        if out.log_probs.requires_grad:
            slot = {"mask": out.label_mask}
            out.log_probs.register_hook(lambda g: slot.__setitem__("grad", g.detach()))
            seen.append(slot)

    hook = net.register_forward_hook(after)
    try:
        with one_thread(), tempfile.TemporaryDirectory(prefix="lossviz-sft-vlm-") as out_dir:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                args = quiet_args(
                    SFTConfig,
                    output_dir=out_dir,
                    per_device_train_batch_size=2,
                    gradient_accumulation_steps=2,
                    bf16=False,
                )
                trainer = quiet_trainer(
                    SFTTrainer,
                    model=net,
                    args=args,
                    train_dataset=Dataset.from_list(SFT_ROWS),
                    processing_class=tok,
                )
                trainer.train()
    finally:
        hook.remove()
    out = []
    for slot in seen:
        mask = slot["mask"]
        W = -slot["grad"].double() * mask  # an ignored label's log-prob is a constant 0
        out.append(
            [
                (
                    int(mask[b].sum()),
                    float(W[b].sum()),
                    float(W[b][mask[b]].max() - W[b][mask[b]].min()),
                )
                for b in range(W.shape[0])
            ]
        )
    return {
        "micro_batches": out,
        "model_accepts_loss_kwargs": bool(trainer.model_accepts_loss_kwargs),
        "trl": trl.__version__,
    }


_SETTINGS = {
    "qwen2_5_vl": "Qwen2.5-VL as shipped (the class declares accepts_loss_kwargs = False)",
    "qwen2_5_vl+model_flag": "Qwen2.5-VL, model.accepts_loss_kwargs = True before the Trainer",
    "qwen2_5_vl+trainer_flag": "Qwen2.5-VL, trainer.model_accepts_loss_kwargs = True",
    "qwen2_5_vl+loss_func": "Qwen2.5-VL, Trainer(compute_loss_func=sum / num_items_in_batch)",
    "qwen2_vl": "Qwen2-VL as shipped (only the inner Qwen2VLModel declares it)",
}
_RULES = {
    "naive": "each micro-batch's own token mean, / GA (the pre-4.46 weighting)",
    "global": "the step's token mean: every trained token 1/N",
}


def vlm_rows(seed: int = 0) -> list[dict]:
    """The measured rows of the cross-framework table for the VLMs in the ``Trainer`` (1 rank, GA 2).

    Each row: ``framework, version, setting, per_token_weight, last_window, data_parallel,
    aux_loss, measured`` (``measured``: the matching weightings and the per-sample shares).
    """
    rows = []
    for name, r in measure_vlm(seed).items():
        model = next((m for m in ("global", "naive") if m in r["matches"]), None)
        counted = r["model_accepts_loss_kwargs"] or r["case"] == "loss_func"
        rows.append(
            {
                "framework": "transformers Trainer",
                "version": r["transformers"],
                "setting": _SETTINGS[name],
                "per_token_weight": _RULES.get(model, f"matches {r['matches']}"),
                "last_window": (
                    "the window's token mean (num_items_in_batch counts the window)"
                    if counted
                    else "micro-batch means / the window's own micro-batch count"
                ),
                "data_parallel": (
                    "token count over every rank, loss x R (average_tokens_across_devices)"
                    if counted
                    else "each rank's mean of means, averaged over ranks"
                ),
                "aux_loss": "none (dense model)",
                "measured": {
                    "matches": r["matches"],
                    "shares": r["diff"]["global"]["measured_share"],
                    "model_accepts_loss_kwargs": r["model_accepts_loss_kwargs"],
                    "max_residual": r["max_residual"],
                },
            }
        )
    for name in ("vlm", "llm"):
        r = measure_sft_vlm(name, seed)
        sizes = [sum(n for n, _, _ in mb) for mb in r["micro_batches"]]
        shares = [sum(w for _, w, _ in mb) for mb in r["micro_batches"]]
        naive = all(abs(x - 1 / len(shares)) < 1e-6 for x in shares)
        rows.append(
            {
                "framework": "TRL SFTTrainer",
                "version": r["trl"],
                "setting": "Qwen2.5-VL (accepts_loss_kwargs = False)"
                if name == "vlm"
                else "Qwen2 causal LM",
                "per_token_weight": _RULES["naive" if naive else "global"],
                "last_window": "as the Trainer: / the window's micro-batch count"
                if naive
                else "the window's token mean",
                "data_parallel": "each rank's mean of means, averaged over ranks"
                if naive
                else "token count over every rank, loss x R",
                "aux_loss": "none (dense model)",
                "measured": {"tokens_per_micro_batch": sizes, "micro_batch_shares": shares},
            }
        )
    return rows
