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


def measure_vlm(seed: int = 0) -> dict[str, dict]:
    """``{setting: measure() result}`` of one ``Trainer`` step on the tiny VLMs (:data:`VLM_SETUP`).

    Settings: ``qwen2_5_vl`` (as shipped), ``qwen2_5_vl+model_flag``, ``+trainer_flag``,
    ``+loss_func``, and ``qwen2_vl`` (as shipped). One process, one thread.
    """
    from .hf_trainer import measure_runs

    setup = dict(VLM_SETUP)
    lengths = setup.pop("lengths")
    names = ["qwen2_5_vl", *(f"qwen2_5_vl+{f}" for f in FIXES), "qwen2_vl"]
    runs = [{"case": "ga", "model": "vlm"}]
    runs += [{"case": f, "model": "vlm"} for f in FIXES]
    runs += [{"case": "ga", "model": "vlm_qwen2"}]
    res = measure_runs(lengths, runs, seed=seed, **setup)
    return dict(zip(names, res, strict=True))


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
    return rows
