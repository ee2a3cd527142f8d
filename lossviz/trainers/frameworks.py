"""Every framework's training step measured the same way, and the one table across frameworks.

A *run* is one epoch of a framework on the tiny Llama (:func:`lossviz.trainers.tiny.tiny_llama`)
over :func:`lossviz.measured_step.samples` in order, under :func:`lossviz.probe.probe`:

============== ====================================== =========================================
framework       settings                               module
============== ====================================== =========================================
transformers    ``ga`` (the Trainer's count)           :mod:`lossviz.trainers.trainer_epoch`
lightning       ``automatic``, ``token_count``         :mod:`lossviz.trainers.lightning_step`
accelerate      ``accumulate``, ``recipe``,            :mod:`lossviz.trainers.accelerate_step`
                ``recipe_shifted``
============== ====================================== =========================================

An epoch of ``b`` batches per rank with ``K`` accumulation steps takes ``ceil(b / K)`` optimizer
steps; when ``K`` does not divide ``b`` the last one is a short window. :func:`measure_runs` runs
every run (one process, or ``R`` real processes with gloo on 127.0.0.1 that share the imports),
reads each step's dealing ``plan[r][k]`` off what the probe recorded, and compares the measured
per-token ``W`` with every lossviz model of that dealing (:func:`lossviz.measured_step.predictions`
plus ``naive_configured``: each micro-batch's own mean divided by the *configured* ``K`` even in a
short window). Each rank also records the parameters' gradient at every optimizer step; it is
compared with the gradient of ``sum(W l)`` for the expected ``W`` computed here in one process, so
the data-parallel rule (DDP's mean over ranks) is measured, not assumed.

:data:`ROWS` lists the row functions of the cross-framework table; :func:`build_table` runs them
and :func:`write_table` caches the result in ``lossviz/data/frameworks.json`` (``python -m lossviz
frameworks-table``). Adding a framework is adding a row function to :data:`ROWS`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import time
from collections.abc import Callable, Sequence

__all__ = [
    "FRAMEWORKS",
    "MODELS",
    "ROWS",
    "RULES",
    "TABLE_FILE",
    "TABLE_SETUP",
    "Row",
    "build_table",
    "expected_model",
    "framework_name",
    "grad_recorder",
    "load_table",
    "measure_rows",
    "measure",
    "measure_runs",
    "pad_collate",
    "predicted_grad",
    "probe_result",
    "step_report",
    "table_from_rows",
    "table_rows",
    "verdict",
    "write_table",
]

# framework -> (module with run_case(cfg), its settings, the pip package whose version is reported)
FRAMEWORKS = {
    "transformers": ("lossviz.trainers.trainer_epoch", ("ga",), "transformers"),
    "lightning": (
        "lossviz.trainers.lightning_step",
        ("automatic", "token_count"),
        "pytorch_lightning",
    ),
    "accelerate": (
        "lossviz.trainers.accelerate_step",
        ("accumulate", "recipe", "recipe_shifted"),
        "accelerate",
    ),
}

MODELS = {
    "global": "the token mean of the whole step: every trained token weighs 1/N",
    "local": "each rank's own token mean, averaged over the ranks",
    "naive": "each micro-batch's own token mean, divided by the micro-batches in the step",
    "naive_configured": "each micro-batch's own token mean, divided by the configured K "
    "(also in a short last window)",
    "unscaled": "each micro-batch's own mean, not divided by K",
    "sum": "the summed loss divided by K",
    "global_overcount": "the step's token mean with one extra token counted per row",
    "local_overcount": "each rank's token mean with one extra token counted per row",
}

# lossviz's expected model of each (framework, setting), for a full and a short window
_EXPECTED = {
    ("transformers", "ga"): "global",
    ("lightning", "automatic"): "naive_configured",
    ("lightning", "token_count"): "global",
    ("accelerate", "accumulate"): "naive_configured",
    ("accelerate", "recipe"): "global_overcount",
    ("accelerate", "recipe_shifted"): "global",
}

TABLE_FILE = "frameworks.json"


def expected_model(framework: str, setting: str) -> str:
    """lossviz's model (a key of :data:`MODELS`) of a framework's setting."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {tuple(FRAMEWORKS)}, got {framework!r}")
    settings = FRAMEWORKS[framework][1]
    if setting not in settings:
        raise ValueError(f"{framework} setting must be one of {settings}, got {setting!r}")
    return _EXPECTED[(framework, setting)]


# ---------------------------------------------------------------------------------------------
# pieces the per-framework modules share


def pad_collate(features: list[dict]) -> dict:
    """Right-pad ``input_ids`` (0), ``labels`` (-100) and ``attention_mask`` into ``[B, T]`` tensors."""
    from .hf_trainer import _pad_collate

    return _pad_collate(features)


@contextlib.contextmanager
def grad_recorder(model):
    """``with grad_recorder(model) as grads``: ``grads[s]`` is the flat parameter gradient (a list)
    right after optimizer step ``s`` ran (all micro-batches in, DDP's all-reduce done)."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    grads: list[list[float]] = []
    params = list(model.parameters())

    def on_step(optimizer, args, kwargs) -> None:
        flat = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1)
            for p in params
        ]
        grads.append(torch.cat(flat).double().tolist())

    handle = register_optimizer_step_post_hook(on_step)
    try:
        yield grads
    finally:
        handle.remove()


def probe_result(rec, grads: list, *, version: str, **extra) -> dict:
    """The JSON-ready record of one run in one process (see :func:`measure_runs`)."""
    from .hf_trainer import micro_batch_records

    mbs = micro_batch_records(rec)
    return {
        "micro_batches": mbs,
        "grads": grads,
        "max_residual": rec.max_residual,
        "optimizer_steps": rec.optimizer_steps,
        "unmatched": rec.unmatched,
        "version": version,
        **extra,
    }


# ---------------------------------------------------------------------------------------------
# running: one process, or R real processes


def _run_one(cfg: dict) -> dict:
    start = time.perf_counter()
    module = importlib.import_module(FRAMEWORKS[cfg["framework"]][0])
    out = module.run_case(cfg)
    return dict(out, seconds=time.perf_counter() - start)


def _spawn(cfgs: list[dict], R: int, timeout: float) -> list[list[dict]]:
    """Run every config in ``R`` processes (gloo, 127.0.0.1); every process ends on any path."""
    from .ranks import run_ranks

    env = dict(os.environ, PYTHONWARNINGS="ignore")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return run_ranks("lossviz.trainers.frameworks", cfgs, R, timeout, env=env)


def _check_run(run: dict) -> dict:
    from ..batching import _check_lengths

    expected_model(run.get("framework"), run.get("setting"))
    lengths = _check_lengths(run.get("lengths"), allow_zero=False)
    cfg = {
        "framework": run["framework"],
        "setting": run["setting"],
        "lengths": lengths,
        "seed": run.get("seed", 0),
    }
    for name in ("per_device_batch_size", "ga_steps", "world_size"):
        v = run.get(name, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
        cfg[name] = v
    if cfg["world_size"] > 8:
        raise ValueError(f"world_size must be at most 8 local processes, got {cfg['world_size']}")
    per_step = cfg["per_device_batch_size"] * cfg["world_size"]
    if len(lengths) % per_step:
        raise ValueError(
            f"every rank must get whole batches: the number of samples ({len(lengths)}) must be "
            f"a multiple of per_device_batch_size x world_size = {per_step}"
        )
    return cfg


def measure_runs(runs: Sequence[dict], *, timeout: float = 240.0) -> list[dict]:
    """Measure every run and compare each of its optimizer steps with lossviz's models.

    ``runs``: ``{"framework", "setting", "lengths", "per_device_batch_size", "ga_steps",
    "world_size", "seed"}`` each; the number of samples must be a multiple of
    ``per_device_batch_size x world_size``. Runs with the same ``world_size > 1`` share one set of
    processes. Returns one :func:`_run_result` per run, in order.
    """
    from ..devices import torch_threads

    cfgs = [_check_run(r) for r in runs]
    by_world: dict[int, list[int]] = {}
    for i, c in enumerate(cfgs):
        by_world.setdefault(c["world_size"], []).append(i)
    out: list[dict | None] = [None] * len(cfgs)
    for R, idx in by_world.items():
        group = [cfgs[i] for i in idx]
        if R == 1:
            with torch_threads(1):
                per_rank = [[_run_one(c) for c in group]]
        else:
            per_rank = _spawn(group, R, timeout)
        for j, i in enumerate(idx):
            out[i] = _run_result(cfgs[i], [rank[j] for rank in per_rank])
    return out


def measure(
    framework: str,
    setting: str,
    lengths: Sequence[int],
    *,
    per_device_batch_size: int = 1,
    ga_steps: int = 1,
    world_size: int = 1,
    seed: int = 0,
    timeout: float = 240.0,
) -> dict:
    """One run of :func:`measure_runs` (see there)."""
    run = {
        "framework": framework,
        "setting": setting,
        "lengths": list(lengths) if not isinstance(lengths, str) else lengths,
        "per_device_batch_size": per_device_batch_size,
        "ga_steps": ga_steps,
        "world_size": world_size,
        "seed": seed,
    }
    return measure_runs([run], timeout=timeout)[0]


# ---------------------------------------------------------------------------------------------
# comparing a run with lossviz's models


def _assemble_steps(merged: dict, lengths: list[int], seed: int) -> tuple[list[dict], float]:
    """Per optimizer step: its samples (epoch indices), its plan over them, their measured W."""
    from ..measured_step import assemble

    flat = dict(merged, micro_batches=[dict(mb, step=0) for mb in merged["micro_batches"]])
    got = assemble(flat, lengths, seed)
    R = len(got["plan"])
    mbs = merged["micro_batches"]
    steps_of = [[mb["step"] for mb in mbs if mb["rank"] == r] for r in range(R)]
    out = []
    for s in sorted({mb["step"] for mb in mbs}):
        mine = [
            [rows for rows, st in zip(got["plan"][r], steps_of[r], strict=True) if st == s]
            for r in range(R)
        ]
        idx = sorted(i for rank in mine for rows in rank for i in rows)
        where = {i: j for j, i in enumerate(idx)}
        out.append(
            {
                "step": s,
                "samples": idx,
                "lengths": [lengths[i] for i in idx],
                "plan": [[[where[i] for i in rows] for rows in rank] for rank in mine],
                "measured": [got["tokens"][i] for i in idx],
            }
        )
    return out, got["off_mask_max"]


def _predictions(lengths: list[int], plan: list[list[list[int]]], K: int) -> dict:
    from ..measured_step import predict, predictions

    out = predictions(lengths, plan)
    padded = [rank + [[]] * (K - len(rank)) for rank in plan]  # empty micro-batches add 0
    out["naive_configured"] = predict(lengths, padded, "naive")
    return out


def predicted_grad(lengths: Sequence[int], seed: int, W: dict[int, list[float]]) -> list[float]:
    """The flat parameter gradient of ``sum_b sum_t W[b][t] l[b, t]`` on the tiny Llama.

    ``b`` runs over the keys of ``W`` (indices into ``samples(lengths, seed)``), one sample at a
    time in this process; ``W[b]`` holds the weights of its ``lengths[b]`` trained tokens.
    """
    import torch

    from ..devices import torch_threads
    from ..measured_step import VOCAB, samples
    from .tiny import tiny_llama

    data = samples(lengths, seed)
    with torch.random.fork_rng(), torch_threads(1):
        model = tiny_llama(VOCAB, seed)
        loss = torch.zeros(())
        for b, w in W.items():
            ids = torch.tensor([data[b]["input_ids"]])
            logits = model(input_ids=ids).logits[0, :-1]
            tok = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
            loss = loss + (torch.tensor(w, dtype=tok.dtype) * tok).sum()
        loss.backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().tolist()


def _rel_diff(measured: list[float], predicted: list[float]) -> float:
    worst = max(abs(m - p) for m, p in zip(measured, predicted, strict=True))
    return worst / max(max(abs(p) for p in predicted), 1e-30)


def _run_result(cfg: dict, results: list[dict]) -> dict:
    """Compare every optimizer step of one run with lossviz's models (and its gradient)."""
    from ..measured_step import compare_case

    merged = dict(results[0], micro_batches=[m for r in results for m in r["micro_batches"]])
    steps, off = _assemble_steps(merged, cfg["lengths"], cfg["seed"])
    exp = expected_model(cfg["framework"], cfg["setting"])
    out_steps = []
    for st in steps:
        predicted = _predictions(st["lengths"], st["plan"], cfg["ga_steps"])
        diff = {n: compare_case(st["measured"], p) for n, p in predicted.items()}
        W = dict(zip(st["samples"], predicted[exp], strict=True))
        want = predicted_grad(cfg["lengths"], cfg["seed"], W)
        grad_diff = [_rel_diff(r["grads"][st["step"]], want) for r in results]
        out_steps.append(
            {
                "step": st["step"],
                "samples": st["samples"],
                "lengths": st["lengths"],
                "plan": st["plan"],
                "micro_batches": len(st["plan"][0]),
                "measured": st["measured"],
                "predicted": predicted,
                "diff": diff,
                # float32 logits: a recovered weight is off by ~6e-8 relative (see lossviz.probe)
                "matches": [n for n in predicted if diff[n]["max_rel_diff"] < 1e-6],
                "grad_rel_diff": grad_diff,
            }
        )
    return {
        **{k: v for k, v in cfg.items()},
        "version": results[0]["version"],
        "expected": exp,
        "steps": out_steps,
        "optimizer_steps": results[0]["optimizer_steps"],
        "max_residual": max(r["max_residual"] for r in results),
        "off_mask_max": off,
        "unmatched": sum(r["unmatched"] for r in results),
        "warnings": sorted({w for r in results for w in r.get("warnings", [])}),
        "seconds": max(r["seconds"] for r in results),
        "pids": [r["pid"] for r in results if "pid" in r],
    }


def step_report(result: dict, step: int) -> dict:
    """One optimizer step of a :func:`measure` result in the shape of
    :func:`lossviz.trainers.hf_trainer.measure`'s result (what ``lossviz probe`` prints), plus
    ``trainer``, ``version``, ``step``, ``steps`` and ``grad_rel_diff``."""
    st = result["steps"][step]
    return {
        "trainer": result["framework"],
        "version": result["version"],
        "case": result["setting"],
        "step": st["step"],
        "steps": len(result["steps"]),
        "lengths": st["lengths"],
        "samples": st["samples"],
        "per_device_batch_size": result["per_device_batch_size"],
        "ga_steps": result["ga_steps"],
        "world_size": result["world_size"],
        "average_tokens_across_devices": None,
        "plan": st["plan"],
        "measured": st["measured"],
        "predicted": st["predicted"],
        "diff": st["diff"],
        "matches": st["matches"],
        "expected": result["expected"],
        "max_residual": result["max_residual"],
        "off_mask_max": result["off_mask_max"],
        "optimizer_steps": result["optimizer_steps"],
        "grad_rel_diff": st["grad_rel_diff"],
    }


_NAMES = {
    "transformers": "transformers {v} Trainer",
    "lightning": "PyTorch Lightning {v}",
    "accelerate": "accelerate {v}",
}


def framework_name(framework: str, version: str) -> str:
    """``"PyTorch Lightning 2.6.6"``: how the reports name a framework."""
    return _NAMES[framework].format(v=version)


def verdict(step: dict) -> str:
    """One sentence for one step of :func:`step_report`: does it match lossviz's expected model."""
    from ..measured_step import verdict as measured_verdict

    who = framework_name(step["trainer"], step["version"]) + f" ({step['case']}"
    who += f", {step['world_size']} ranks)" if step["world_size"] > 1 else ")"
    grads = max(step["grad_rel_diff"])
    grad_words = (
        f"; the parameters' gradient at the step equals that of sum(W l) (within {1e-4:.0e})"
        if grads < 1e-4
        else f"; but the parameters' gradient differs by {grads:.1e} of its largest entry"
    )
    return measured_verdict(step, who=who, models=MODELS, on_match=grad_words)


# ---------------------------------------------------------------------------------------------
# the table

# one setup for every pinned row: unequal samples, K = 3 over 5 batches (a full window, then a
# short one of 2), and 2 ranks with K = 2 over 3 batches each (a full window, then a short one)
TABLE_SETUP = {
    "one_process": {"lengths": [3, 9, 2, 5, 7], "per_device_batch_size": 1, "ga_steps": 3},
    "two_ranks": {
        "lengths": [3, 9, 2, 5, 7, 4],
        "per_device_batch_size": 1,
        "ga_steps": 2,
        "world_size": 2,
    },
}

# what each model means for one token's weight, in words (n_k: trained tokens of micro-batch k of
# the window, N: of the whole window over every rank, K: the configured accumulation steps)
RULES = {
    "global": "1/N: the token mean of the whole step",
    "local": "1/(R·N_r): each rank's own token mean",
    "naive": "1/(k·n_k): each micro-batch's token mean over the k in the window",
    "naive_configured": "1/(K·n_k): each micro-batch's own token mean, divided by K",
    "unscaled": "1/n_k: each micro-batch's own token mean, not divided by K",
    "sum": "1/K: the summed loss divided by K",
    "global_overcount": "1/(N + rows): the step's token mean, one extra token per row",
    "local_overcount": "1/(R·(N_r + rows_r)): each rank's token mean, one extra token per row",
}


def _model_of(step: dict, expected: str) -> str:
    """The lossviz model a measured step follows: the expected one if it matches, else the first."""
    if expected in step["matches"]:
        return expected
    return step["matches"][0] if step["matches"] else "none"


def _last_window_words(model: str, total: float, K: int, k: int) -> str:
    """The short last window (``k < K`` batches) in words, with its measured total weight."""
    if model == "naive_configured":
        return f"still divided by K: {k} of K = {K} batches weigh {k}/{K} = {total:.3f} in total"
    if model == "naive":
        return f"divided by the {k} batches it holds: weighs {total:.3f} in total"
    if model == "global":
        return f"its own token mean: weighs {total:.3f} in total"
    if model == "global_overcount":
        return f"its own token count, one extra per row: weighs {total:.3f} in total"
    if model == "none":
        return "none of lossviz's models"
    return f"{RULES[model]} (total {total:.3f})"


def _dealing(step: dict, samples_per_rank_in_order: bool) -> str:
    return "in order, batch i to rank i % R" if samples_per_rank_in_order else "shuffled"


def _in_order(result: dict) -> bool:
    st = result["steps"][0]
    R = result["world_size"]
    got = [[st["samples"][i] for rows in rank for i in rows] for rank in st["plan"]]
    return all(all(i % R == r for i in rank) for r, rank in enumerate(got)) and all(
        rank == sorted(rank) for rank in got
    )


class Row:
    """One row of the table: the runs it needs (see :func:`measure_runs`) and how its cells are
    read from their results: ``build(results) -> dict``. ``runs`` may be empty for a row that
    measures itself (``build([])``), e.g. a model the ``Trainer`` takes another path for.

    The dict has the keys of :func:`_framework_row`'s rows: ``key``, ``framework``, ``label``,
    ``package``, ``version``, ``setting``, ``weight_model``/``weight_rule``,
    ``last_window_model``/``last_window_total``/``last_window_rule``, ``dp_model``,
    ``dp_last_window_model``, ``dp_rule``, ``dp_dealing``, ``dp_gradient_matches``, ``aux_rule``,
    ``fix``, ``source``, ``max_residual_below_1e-5``; a ``*_model`` is a key of :data:`MODELS`
    (the figure colours by it) or ``"none"``.
    """

    def __init__(self, key: str, runs: list[dict], build: Callable[[list[dict]], dict]) -> None:
        self.key, self.runs, self.build = key, runs, build


def _framework_row(
    framework: str,
    setting: str,
    name: str,
    label: str,
    setting_words: str,
    fix: str,
    source: str,
) -> Row:
    one = dict(TABLE_SETUP["one_process"], framework=framework, setting=setting)
    two = dict(TABLE_SETUP["two_ranks"], framework=framework, setting=setting)

    def build(results: list[dict]) -> dict:
        r1, r2 = results
        exp = r1["expected"]
        full, short = r1["steps"][0], r1["steps"][-1]
        K = r1["ga_steps"]
        weight = _model_of(full, exp)
        last = _model_of(short, exp)
        dp = _model_of(r2["steps"][0], exp)
        dp_last = _model_of(r2["steps"][-1], exp)
        total = sum(short["diff"][last if last != "none" else exp]["measured_share"])
        grad_ok = all(d < 1e-4 for r in results for st in r["steps"] for d in st["grad_rel_diff"])
        if dp not in RULES:
            dp_words = "none of lossviz's models"
        elif dp in ("global", "global_overcount"):
            dp_words = f"{RULES[dp].split(': ', 1)[0]} over both ranks' tokens"
        else:
            dp_words = f"{RULES[dp].split(': ', 1)[0]} on each rank, then DDP's mean: ÷ R"
        return {
            "key": f"{framework}/{setting}",
            "framework": name,
            "label": label,
            "package": FRAMEWORKS[framework][2],
            "version": r1["version"],
            "setting": setting_words,
            "weight_model": weight,
            "weight_rule": RULES.get(weight, "none of lossviz's models"),
            "last_window_model": last,
            "last_window_total": round(total, 3),
            "last_window_rule": _last_window_words(last, total, K, short["micro_batches"]),
            "dp_model": dp,
            "dp_last_window_model": dp_last,
            "dp_rule": dp_words,
            "dp_dealing": _dealing(r2["steps"][0], _in_order(r2)),
            "dp_gradient_matches": grad_ok,
            "aux_rule": "no router loss in this model: not measured here (see the MoE rows)",
            "fix": fix,
            "source": source,
            "max_residual_below_1e-5": max(r1["max_residual"], r2["max_residual"]) < 1e-5,
        }

    return Row(f"{framework}/{setting}", [one, two], build)


ROWS: list[Row] = [
    _framework_row(
        "transformers",
        "ga",
        "transformers Trainer",
        "Trainer, num_items_in_batch",
        "a causal LM that takes **kwargs (num_items_in_batch), average_tokens_across_devices=True",
        "nothing to fix: every token of the step weighs 1/N (keep average_tokens_across_devices)",
        "https://github.com/huggingface/transformers/blob/v5.24.0/src/transformers/trainer.py",
    ),
    _framework_row(
        "lightning",
        "automatic",
        "PyTorch Lightning",
        "automatic optimization",
        "Trainer(accumulate_grad_batches=K), automatic optimization, training_step returns the "
        "model's mean loss",
        "return sum(m·l) · K · R / N from training_step, N counted over the window's K batches "
        "and all ranks (Lightning divides by K, DDP by R); there is no built-in count",
        "https://github.com/Lightning-AI/pytorch-lightning/blob/2.6.6/src/lightning/pytorch/loops/"
        "optimization/automatic.py",
    ),
    _framework_row(
        "lightning",
        "token_count",
        "PyTorch Lightning",
        "training_step returns sum·K·R/N",
        "the fix: count every window's tokens before the epoch (all-reduced), return the summed "
        "token loss · K · R / N",
        "nothing to fix: every token of the step weighs 1/N",
        "https://github.com/Lightning-AI/pytorch-lightning/issues/20350",
    ),
    _framework_row(
        "accelerate",
        "accumulate",
        "accelerate",
        "accumulate() loop",
        "with accelerator.accumulate(model): accelerator.backward(model(**batch).loss)",
        "use the token-count recipe, counting labels[..., 1:] != -100",
        "https://github.com/huggingface/accelerate/blob/v1.16.0/src/accelerate/accelerator.py",
    ),
    _framework_row(
        "accelerate",
        "recipe",
        "accelerate",
        "the documented token-count recipe",
        "the documented token-count recipe: num_items_in_batch = labels.ne(-100) over the "
        "window, gathered; loss · K · num_processes",
        "count labels[..., 1:] != -100: the causal shift leaves each row's first label unscored",
        "https://github.com/huggingface/accelerate/blob/v1.16.0/examples/by_feature/"
        "gradient_accumulation_for_autoregressive_models.py",
    ),
    _framework_row(
        "accelerate",
        "recipe_shifted",
        "accelerate",
        "the recipe, counting labels[..., 1:]",
        "the recipe with the fixed count: labels[..., 1:] != -100",
        "nothing to fix: every token of the step weighs 1/N",
        "https://huggingface.co/docs/accelerate/usage_guides/gradient_accumulation",
    ),
]


# The Trainer on models it takes another path for (lossviz.trainers.vlm, lossviz.trainers.moe):
# one process under GA for the vision-language models, 1 and 2 gloo ranks for the MoE aux loss.
_VLM_FIX = (
    "set model.accepts_loss_kwargs = True, or trainer.model_accepts_loss_kwargs = True, or pass a "
    "compute_loss_func that divides the summed loss by num_items_in_batch (each measured: 1/N)"
)


def _weight_model(words: str) -> str:
    """The lossviz model a VLM/MoE row's per-token rule names."""
    if "micro-batch" in words:
        return "naive"
    return "local" if "each rank" in words else "global"


def _path_row(
    r: dict,
    key: str,
    package: str,
    model: str,
    *,
    last_window_rule: str,
    dp_model: str,
    dp_rule: str,
    aux_rule: str,
    fix: str,
    source: str,
    residual_ok: bool,
) -> dict:
    """A VLM/MoE row in the table's columns: no short window or dealing measured here."""
    return {
        "key": key,
        "framework": r["framework"],
        "label": r["setting"],
        "package": package,
        "version": r["version"],
        "setting": r["setting"],
        "weight_model": model,
        "weight_rule": RULES[model],
        "last_window_model": "read",
        "last_window_total": None,
        "last_window_rule": last_window_rule,
        "dp_model": dp_model,
        "dp_last_window_model": "read",
        "dp_rule": dp_rule,
        "dp_dealing": "",
        "dp_gradient_matches": None,
        "aux_rule": aux_rule,
        "fix": fix,
        "source": source,
        "max_residual_below_1e-5": residual_ok,
    }


def model_path_rows(vlm: list[dict], moe: list[dict]) -> list[dict]:
    """The table rows of :func:`lossviz.trainers.vlm.vlm_rows` and
    :func:`lossviz.trainers.moe.moe_rows`, in the columns of :data:`ROWS`' rows plus the aux rule.

    Cells that were read from the source rather than measured say so (and are drawn uncoloured:
    model ``"read"``); no rounding-level number is kept (the aux factors are printed to 3 digits).
    """
    out = []
    for i, r in enumerate(vlm):
        model = _weight_model(r["per_token_weight"])
        trl = r["framework"].startswith("TRL")
        fix = (
            "nothing to fix: every token of the step weighs 1/N" if model == "global" else _VLM_FIX
        )
        if trl and model != "global":
            fix = "as for the Trainer (TRL's SFTTrainer inherits the model's flag)"
        out.append(
            _path_row(
                r,
                f"{'trl' if trl else 'transformers'}/vlm_{i}",
                "trl" if trl else "transformers",
                model,
                last_window_rule=r["last_window"] + " (read from the source)",
                dp_model="read",
                dp_rule=r["data_parallel"] + " (read from the source)",
                aux_rule="no router loss (dense model)",
                fix=fix,
                source="https://github.com/huggingface/transformers/blob/v5.24.0/src/"
                "transformers/trainer.py",
                residual_ok=r["measured"].get("max_residual", 0.0) < 1e-5,
            )
        )
    for i, r in enumerate(moe):
        m = r["measured"]
        K, R = m["ga_steps"], m["world_size"]
        model = m["ce_expected"] if m["ce_expected"] in m["ce"] else m["ce"][0]
        scale = f"1/(K·R) = 1/{K * R}" if m["average_tokens_across_devices"] else f"1/K = 1/{K}"
        out.append(
            _path_row(
                r,
                f"transformers/moe_{i}",
                "transformers",
                model,
                last_window_rule=r["last_window"],
                dp_model=model if R > 1 else "read",
                dp_rule=r["data_parallel"] if R > 1 else "one rank: see the next rows",
                aux_rule=r["aux_loss"],
                fix=(
                    f"scale router_aux_loss_coef by {scale} for the aux to weigh c on the mean of "
                    "the step's micro-batches, as in a single batch"
                ),
                source="https://github.com/huggingface/transformers/issues/48690",
                residual_ok=m["ce_max_residual"] < 1e-5,
            )
        )
    return out


def measure_model_path_rows(timeout: float = 240.0) -> list[dict]:
    """:func:`model_path_rows` measured now: a VLM and an MoE model in the real ``Trainer``."""
    from .moe import moe_rows
    from .vlm import vlm_rows

    return model_path_rows(vlm_rows(), moe_rows(timeout=timeout))


def measure_rows(
    rows: Sequence[Row] | None = None, *, timeout: float = 240.0
) -> list[tuple[dict, list[dict]]]:
    """``[(table row, the measured runs it was read from)]`` for ``rows`` (default :data:`ROWS`).

    Every row's runs are measured together (:func:`measure_runs`: one set of processes for all the
    runs with the same ``world_size``), then each row's ``build`` reads its cells.
    """
    rows = ROWS if rows is None else list(rows)
    runs = [run for row in rows for run in row.runs]
    results = measure_runs(runs, timeout=timeout) if runs else []
    out, i = [], 0
    for row in rows:
        mine = results[i : i + len(row.runs)]
        out.append((row.build(mine), mine))
        i += len(row.runs)
    return out


def table_rows(rows: Sequence[Row] | None = None, *, timeout: float = 240.0) -> list[dict]:
    """The table rows of :func:`measure_rows`, in order."""
    return [row for row, _ in measure_rows(rows, timeout=timeout)]


def table_from_rows(rows: list[dict], model_rows: list[dict] | None = None) -> dict:
    """The cached table's shape around measured rows: ``{"setup", "torch", "rules", "rows",
    "model_rows"}`` (``model_rows``: :func:`model_path_rows`, the VLM and MoE rows)."""
    import torch

    return {
        "setup": TABLE_SETUP,
        "torch": torch.__version__.split("+")[0],
        "rules": RULES,
        "rows": rows,
        "model_rows": list(model_rows or []),
    }


def build_table(rows: Sequence[Row] | None = None, *, timeout: float = 240.0) -> dict:
    """The whole table: ``{"setup", "torch", "rules", "rows", "model_rows"}`` (JSON-ready, no
    rounding-level number: totals to 3 decimals, gradient checks as booleans)."""
    return table_from_rows(table_rows(rows, timeout=timeout), measure_model_path_rows(timeout))


def load_table(path: str | os.PathLike | None = None) -> dict:
    """The cached table (``lossviz/data/frameworks.json``); no torch, no trainer library."""
    from ..data_files import data_file

    path = data_file(TABLE_FILE) if path is None else path
    with open(path) as f:
        return json.load(f)


def write_table(table: dict, path: str | os.PathLike | None = None) -> str:
    """Write ``table`` as the cache (atomically) and return the path."""
    from ..data_files import data_file

    path = str(data_file(TABLE_FILE) if path is None else path)
    with open(path + ".tmp", "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


_STARTED = time.perf_counter()


def _stamp(results: list[dict]) -> None:
    """Each rank's result carries its pid (the tests check that every rank ended) and its time."""
    results[0]["process_seconds"] = time.perf_counter() - _STARTED
    for r in results:
        r["pid"] = os.getpid()


if (
    __name__ == "__main__"
):  # one rank of measure_runs(): python -m lossviz.trainers.frameworks CFGS OUT
    from lossviz.trainers.ranks import rank_main

    rank_main(_run_one, _stamp)
