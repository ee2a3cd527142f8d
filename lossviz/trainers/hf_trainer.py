"""The real transformers ``Trainer`` measured with :func:`lossviz.probe.probe`, beside lossviz's W.

One optimizer step of the installed ``Trainer`` on a one-layer model built from a config (a Llama
by default; nothing downloaded, no tokenizer: the samples are random token ids). Sample b holds
``lengths[b] + 1`` tokens and ``labels = input_ids`` (padding ``-100``), as a language-modelling
collator makes them, so ``lengths[b]`` tokens are trained after the causal shift. Cases:

============= ================================================= =============================
case           what the user's setup does                        lossviz's model (5.24)
============= ================================================= =============================
ga             a transformers model: ``num_items_in_batch``       ``global`` (``local`` without
               counts every micro-batch (and every rank)          ``average_tokens_across_devices``)
naive          a model whose ``forward`` takes no ``**kwargs``    ``naive``: mean of micro-batch
               (the Trainer cannot pass the count)                means, / GA
compute_loss   a ``compute_loss`` override that returns           ``unscaled``: each micro-batch's
               ``model(**inputs).loss`` (drops the count)         own mean, no / GA (issue 37766)
packed         ``DataCollatorWithFlattening``: one row,           as ``ga``; the first label of
               ``position_ids`` restart per sample                every piece is -100
model_flag     ``model.accepts_loss_kwargs = True``               as ``ga`` on a transformers
trainer_flag   ``trainer.model_accepts_loss_kwargs = True``       LM; each restores the token
loss_func      ``Trainer(compute_loss_func=...)`` dividing by     mean on a model that declares
               ``num_items_in_batch``                             ``accepts_loss_kwargs = False``
============= ================================================= =============================

``model`` picks the tiny model (:data:`MODELS`): ``llama``; ``vlm``, a Qwen2.5-VL, whose class
declares ``accepts_loss_kwargs = False`` (its ``ga`` case is ``naive``; see :mod:`.vlm`);
``vlm_qwen2``, a Qwen2-VL; ``moe``, a Mixtral whose loss adds its router aux loss (see :mod:`.moe`).

Samples are fed in order (a ``SequentialSampler``); the micro-batch and rank each sample landed in
are read from what the probe recorded (accelerate deals whole batches to ranks), and the
prediction uses that plan (:func:`lossviz.accumulation.plan_weights`). With ``world_size > 1`` the
ranks are real processes (gloo on 127.0.0.1) started by :func:`measure`; ``python``/``pythonpath``
run them under another interpreter or transformers version (see :mod:`lossviz.trainers.versions`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence

import torch

from ..measured_step import VOCAB, assemble, compare_case, predictions, samples
from .quiet import one_thread

__all__ = ["CASES", "MODELS", "expected_normalization", "measure", "measure_runs", "run_case"]

CASES = ("ga", "naive", "compute_loss", "packed", "model_flag", "trainer_flag", "loss_func")
# the tiny models a step can run on (lossviz.trainers.tiny); ``vlm`` is Qwen2.5-VL
MODELS = {
    "llama": "a 1-layer Llama causal LM",
    "vlm": "a 1-layer Qwen2.5-VL vision-language model (text-only batches)",
    "vlm_qwen2": "a 1-layer Qwen2-VL vision-language model (text-only batches)",
    "moe": "a 1-layer Mixtral mixture of experts (4 experts, 2 per token) with its router aux loss",
}
# the models whose class declares ``accepts_loss_kwargs = False`` (transformers 5.24): the Trainer
# counts no tokens for them
_NO_LOSS_KWARGS = ("vlm",)


def expected_normalization(
    case: str, average_tokens_across_devices: bool = True, model: str = "llama"
) -> str:
    """lossviz's model of transformers 5.24 for a case on a model (see the module's table)."""
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    if model not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
    if case == "naive" or (case == "ga" and model in _NO_LOSS_KWARGS):
        return "naive"
    if case == "compute_loss":
        return "unscaled"
    return "global" if average_tokens_across_devices else "local"


def _pad_collate(features: list[dict]) -> dict:
    T = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros(len(features), T, dtype=torch.long)
    labels = torch.full((len(features), T), -100, dtype=torch.long)
    attn = torch.zeros(len(features), T, dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        ids[i, :n], labels[i, :n], attn[i, :n] = (
            torch.tensor(f["input_ids"]),
            torch.tensor(f["labels"]),
            1,
        )
    return {"input_ids": ids, "labels": labels, "attention_mask": attn}


class _PlainForward(torch.nn.Module):
    """A model whose forward names its arguments (no ``**kwargs``), as many custom models do."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None, labels=None, position_ids=None):
        return self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            position_ids=position_ids,
        )


def _training_args(out_dir: str, cfg: dict):
    from transformers import TrainingArguments

    from .quiet import quiet_args

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    kw = {
        "output_dir": out_dir,
        "per_device_train_batch_size": cfg["per_device_batch_size"],
        "gradient_accumulation_steps": cfg["ga_steps"],
        "remove_unused_columns": False,
        "seed": cfg["seed"],
    }
    if cfg["world_size"] > 1:
        kw["ddp_backend"] = "gloo"
    if cfg.get("model") == "moe":
        kw["max_grad_norm"] = (
            0.0  # the router's gradient is read as the optimizer gets it: unclipped
        )
    if cfg.get("average_tokens_across_devices") is not None:
        if "average_tokens_across_devices" not in known:
            raise ValueError(
                "this transformers has no average_tokens_across_devices (added in 4.47)"
            )
        kw["average_tokens_across_devices"] = cfg["average_tokens_across_devices"]
    return quiet_args(**kw), kw.get("average_tokens_across_devices")


def _token_sum_over_count(outputs, labels, num_items_in_batch=None):
    """A ``compute_loss_func``: the shifted cross-entropy summed, divided by the Trainer's token count."""
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    total = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),
        labels[:, 1:].flatten().to(logits.device),
        ignore_index=-100,
        reduction="sum",
    )
    if num_items_in_batch is None:
        num_items_in_batch = (labels[:, 1:] != -100).sum()
    return total / num_items_in_batch


def _build_model(cfg: dict):
    from .tiny import tiny_llama, tiny_moe, tiny_vlm

    name = cfg.get("model", "llama")
    if name == "llama":
        return tiny_llama(VOCAB, cfg["seed"])
    if name == "moe":
        return tiny_moe(VOCAB, cfg["seed"], float(cfg.get("aux_coef", 0.0)))
    return tiny_vlm(cfg["seed"], "qwen2_5_vl" if name == "vlm" else "qwen2_vl")


def _router(model) -> list:
    return [m.weight for n, m in model.named_modules() if n.endswith("mlp.gate")]


def _aux_gradient(model, micro_batches) -> list[float]:
    """``sum_k d aux_k / d router``: the router aux loss of each recorded micro-batch, recomputed."""
    model.zero_grad()
    for mb in micro_batches:
        labels = mb.labels
        out = model(input_ids=labels.clamp(min=0), attention_mask=(labels != -100).long())
        out.aux_loss.backward()
    return torch.cat([w.grad.flatten() for w in _router(model)]).double().tolist()


def run_case(cfg: dict) -> dict:
    """One ``Trainer.train()`` step of ``cfg["case"]`` on ``cfg["model"]`` in this process, under the probe.

    Returns ``{"micro_batches": [{"rank", "step", "labels", "W", "position_ids"}...], "max_residual",
    "optimizer_steps", "transformers", "average_tokens_across_devices"}`` (lists, JSON-ready); a
    ``moe`` step adds ``router_grad`` (the router weights' gradient the optimizer stepped with, after
    the ranks' average) and ``aux_grad`` (``sum_k d aux_k / d router`` over this rank's micro-batches).
    """
    import transformers
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    from ..probe import probe
    from .quiet import quiet_trainer

    case, name = cfg["case"], cfg.get("model", "llama")
    expected_normalization(case, model=name)  # validates the names
    if name != "llama" and case == "packed":
        raise ValueError("the packed case is measured on the llama model only")
    model = _build_model(cfg)
    inner = model
    if case == "naive":
        model = _PlainForward(model)
    if case == "model_flag":
        model.accepts_loss_kwargs = True  # the instance attribute the Trainer reads first
    collator = _pad_collate
    if case == "packed":
        from transformers import DataCollatorWithFlattening

        collator = DataCollatorWithFlattening()

    class _Trainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):  # fixed order, for the measurement
            return SequentialSampler(self.train_dataset)

        if case == "compute_loss":

            def compute_loss(self, model, inputs, return_outputs=False, *args, **kwargs):
                outputs = model(**inputs)  # the user's override: num_items_in_batch is dropped
                return (outputs.loss, outputs) if return_outputs else outputs.loss

    stepped: dict = {}
    with tempfile.TemporaryDirectory(prefix="lossviz-trainer-") as out_dir:
        args, atad = _training_args(out_dir, cfg)
        extra = {"compute_loss_func": _token_sum_over_count} if case == "loss_func" else {}
        trainer = quiet_trainer(
            _Trainer,
            model=model,
            args=args,
            train_dataset=samples(cfg["lengths"], cfg["seed"]),
            data_collator=collator,
            **extra,
        )
        if case == "trainer_flag":
            trainer.model_accepts_loss_kwargs = True
        hooks = []
        if name == "moe":
            from torch.optim.optimizer import register_optimizer_step_pre_hook

            def keep(optimizer, args, kwargs):
                stepped["router"] = torch.cat([w.grad.flatten() for w in _router(inner)])

            hooks.append(register_optimizer_step_pre_hook(keep))
        try:
            with probe(inner) as rec:
                trainer.train()
        finally:
            for h in hooks:
                h.remove()
    if atad is None:
        atad = getattr(args, "average_tokens_across_devices", None)
    mbs = micro_batch_records(rec)
    out = {
        "micro_batches": mbs,
        "max_residual": rec.max_residual,
        "optimizer_steps": rec.optimizer_steps,
        "transformers": transformers.__version__,
        "average_tokens_across_devices": atad,
        "model_accepts_loss_kwargs": bool(getattr(trainer, "model_accepts_loss_kwargs", True)),
    }
    if name == "moe":
        out["router_grad"] = stepped["router"].double().tolist()
        out["aux_grad"] = _aux_gradient(inner, rec.micro_batches)
    return out


def micro_batch_records(rec) -> list[dict]:
    """Each micro-batch a probe recorded, JSON-ready: rank, optimizer step, labels, the step's
    ``W`` and ``position_ids`` (what a rank process sends back to be assembled)."""
    return [
        {
            "rank": mb.rank,
            "step": mb.step,
            "labels": mb.labels.tolist(),
            "W": mb.step_W.tolist(),
            "position_ids": None if mb.position_ids is None else mb.position_ids.tolist(),
        }
        for mb in rec.micro_batches
    ]


def _spawn(
    cfgs: list[dict], R: int, python: str | None, pythonpath: str | None, timeout: float
) -> list[list[dict]]:
    """Run :func:`run_case` on each config in ``R`` processes; every process is ended on any error."""
    from .ranks import run_ranks

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return run_ranks(
        "lossviz.trainers.hf_trainer",
        cfgs,
        R,
        timeout,
        env=env,
        python=python,
        doing="running the Trainer",
    )


def _check_setup(lengths, per_device_batch_size, ga_steps, world_size) -> list[int]:
    from ..batching import _check_lengths
    from ..step_shape import check_step

    lengths = _check_lengths(lengths, allow_zero=False)
    check_step(
        len(lengths),
        per_device_batch_size=per_device_batch_size,
        ga_steps=ga_steps,
        world_size=world_size,
    )
    if world_size > 8:
        raise ValueError(f"world_size must be at most 8 local processes, got {world_size}")
    return lengths


def _result(cfg: dict, results: list[dict]) -> dict:
    merged = dict(results[0], micro_batches=[m for r in results for m in r["micro_batches"]])
    got = assemble(merged, cfg["lengths"], cfg["seed"])
    atad = merged["average_tokens_across_devices"]
    predicted = predictions(cfg["lengths"], got["plan"])
    diff = {n: compare_case(got["tokens"], p) for n, p in predicted.items()}
    return {
        **{k: v for k, v in cfg.items() if k != "seed"},
        "transformers": merged["transformers"],
        "average_tokens_across_devices": atad,
        "plan": got["plan"],
        "measured": got["tokens"],
        "predicted": predicted,
        "diff": diff,
        # float32 logits: a recovered weight is off by ~6e-8 relative (see lossviz.probe)
        "matches": [n for n in predicted if diff[n]["max_rel_diff"] < 1e-6],
        "expected": expected_normalization(
            cfg["case"], atad if atad is not None else True, cfg.get("model", "llama")
        ),
        "max_residual": max(r["max_residual"] for r in results),
        "off_mask_max": got["off_mask_max"],
        "optimizer_steps": merged["optimizer_steps"],
        "model_accepts_loss_kwargs": merged.get("model_accepts_loss_kwargs"),
        **_router_result(results),
    }


def _router_result(results: list[dict]) -> dict:
    """A MoE step's router gradient (the same on every rank after DDP) and ``sum d aux / d router``."""
    if "router_grad" not in results[0]:
        return {}
    aux = torch.tensor([r["aux_grad"] for r in results], dtype=torch.float64).sum(0)
    return {"router_grad": results[0]["router_grad"], "aux_grad": aux.tolist()}


def measure_runs(
    lengths: Sequence[int],
    runs: Sequence[dict],
    *,
    per_device_batch_size: int = 1,
    ga_steps: int = 1,
    world_size: int = 1,
    seed: int = 0,
    python: str | None = None,
    pythonpath: str | None = None,
    timeout: float = 180.0,
) -> list[dict]:
    """:func:`measure` for several ``runs`` (``{"case", "average_tokens_across_devices", "model",
    "aux_coef"}``) that share one set of processes (the import and the process group are paid once)."""
    lengths = _check_setup(lengths, per_device_batch_size, ga_steps, world_size)
    cfgs = []
    for run in runs:
        model = run.get("model", "llama")
        expected_normalization(run["case"], model=model)
        if run["case"] == "packed" and model != "llama":
            raise ValueError(f"the packed case is measured on the llama model only, not {model!r}")
        if run.get("aux_coef") and model != "moe":
            raise ValueError(
                f"aux_coef is the moe model's router_aux_loss_coef; model is {model!r}"
            )
        cfgs.append(
            {
                "case": run["case"],
                "model": model,
                "aux_coef": float(run.get("aux_coef") or 0.0),
                "lengths": lengths,
                "per_device_batch_size": per_device_batch_size,
                "ga_steps": ga_steps,
                "world_size": world_size,
                "average_tokens_across_devices": run.get("average_tokens_across_devices"),
                "seed": seed,
            }
        )
    if world_size == 1 and python is None and pythonpath is None:
        with one_thread():
            per_rank = [[run_case(c) for c in cfgs]]
    else:
        per_rank = _spawn(cfgs, world_size, python, pythonpath, timeout)
    return [_result(c, [rank[i] for rank in per_rank]) for i, c in enumerate(cfgs)]


def measure(
    lengths: Sequence[int],
    *,
    per_device_batch_size: int = 1,
    ga_steps: int = 1,
    world_size: int = 1,
    case: str = "ga",
    average_tokens_across_devices: bool | None = None,
    model: str = "llama",
    aux_coef: float = 0.0,
    **kwargs,
) -> dict:
    """Measure one Trainer step and compare it with every lossviz prediction.

    Needs ``len(lengths) == per_device_batch_size * ga_steps * world_size`` (one optimizer step).
    Returns ``{"plan", "measured", "predicted": {model: per-token lists}, "diff": {model:
    compare_case(...)}, "expected", "matches", "max_residual", "off_mask_max", "transformers", ...}``;
    ``matches`` lists every model within 1e-6 (relative) of the measurement. ``model`` picks the
    tiny model (:data:`MODELS`), ``aux_coef`` the ``moe`` model's ``router_aux_loss_coef``.
    ``world_size > 1`` (or ``python``/``pythonpath``) runs real processes; ``seed``, ``timeout``
    pass through.
    """
    run = {
        "case": case,
        "average_tokens_across_devices": average_tokens_across_devices,
        "model": model,
        "aux_coef": aux_coef,
    }
    return measure_runs(
        lengths,
        [run],
        per_device_batch_size=per_device_batch_size,
        ga_steps=ga_steps,
        world_size=world_size,
        **kwargs,
    )[0]


if (
    __name__ == "__main__"
):  # one rank of measure_runs(): python -m lossviz.trainers.hf_trainer CFGS OUT
    from lossviz.trainers.ranks import rank_main

    rank_main(run_case)
