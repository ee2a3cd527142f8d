"""Train the tiny causal LM on the copy/reverse task under several loss reductions ("arms").

Every arm sees the same batches in the same order and starts from the same weights for a given
seed; only the way token losses become one scalar differs. The loss of one batch is
``lv.reduce(lv.token_losses(logits, ids, shift=True), mask, reduction)``. Gradient accumulation
runs the package's one GA loop (:func:`lossviz.step_gradients.rank_grad`) on its one dealing
(:mod:`lossviz.step_shape`) and micro-batch weights (:mod:`lossviz.accumulation`):
``K`` micro-batches grouped by length as ``group_by_length`` does, each weighted by its own token
mean / K (naive) or by the token count ``N`` of the whole batch (global, transformers'
``num_items_in_batch``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import torch

from ..accumulation import NORMALIZATIONS, micro_batch_weights
from ..batching import Batch
from ..checks import positive_int
from ..cross_entropy import token_losses
from ..devices import torch_threads
from ..model import TinyCausalLM, TinyConfig
from ..reductions import reduce, weights
from ..step_gradients import rank_grad
from ..step_shape import deal
from .tasks import (
    EOS,
    Example,
    TaskConfig,
    balanced_examples,
    collate,
    exact_match,
    make_example,
)

__all__ = [
    "Arm",
    "ARMS",
    "DEFAULT_ARMS",
    "ExperimentConfig",
    "typical_tokens",
    "batch_loss",
    "greedy_decode",
    "evaluate",
    "train_arm",
    "run_experiment",
]

ACCUMULATIONS = ("none", *NORMALIZATIONS)  # one batch, or a GA loop of lossviz.accumulation
EVAL_SEED = 10_007  # the held-out set is the same for every seed and arm
DATA_SEED = 1_000  # seed s trains on the stream random.Random(DATA_SEED + s)


@dataclass(frozen=True)
class Arm:
    """One way to turn token losses into the scalar that is minimised."""

    name: str
    label: str
    reduction: str = "token_mean"
    accumulation: str = "none"  # "none" (one batch) or a normalization: "naive", "global", "sum"
    prompt_weight: float = 0.0
    lr_per_token: bool = False  # lr / (typical trained tokens per batch), as advised for `sum`

    def __post_init__(self) -> None:
        if self.accumulation not in ACCUMULATIONS:
            raise ValueError(
                f"accumulation must be one of {ACCUMULATIONS}, got {self.accumulation!r}"
            )


ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm("token_mean", "token mean  Σm·l/N"),
        Arm("sample_mean", "sample mean  1/B Σ_b mean_t", reduction="sample_mean"),
        Arm("sum", "sum, lr / tokens per batch", reduction="sum", lr_per_token=True),
        Arm("sum_same_lr", "sum, same lr", reduction="sum"),
        Arm("ga_naive", "GA naive  1/K Σ_k mean_k", accumulation="naive"),
        Arm("ga_global", "GA global  Σ_k Σm·l / N", accumulation="global"),
        Arm("prompt_weight", "prompt-loss weight 0.1", prompt_weight=0.1),
    )
}
DEFAULT_ARMS = tuple(ARMS)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that fixes an experiment's numbers (the cache stores it and tests compare it)."""

    arms: tuple[str, ...] = DEFAULT_ARMS
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 80
    batch_size: int = 16
    ga_steps: int = 4
    lr: float = 1e-2
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    vocab_size: int = 16
    eval_per_bucket: int = 64
    eval_every: int = 10
    threads: int = 1
    task: TaskConfig = field(default_factory=TaskConfig)

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"unknown arms {unknown}; choose from {list(ARMS)}")
        for name in ("steps", "batch_size", "ga_steps", "d_model", "n_layers", "n_heads"):
            positive_int(name, getattr(self, name))
        for name in ("eval_per_bucket", "eval_every", "threads"):
            positive_int(name, getattr(self, name))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        if self.batch_size % self.ga_steps:
            raise ValueError(
                f"batch_size={self.batch_size} must be divisible by ga_steps={self.ga_steps}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.vocab_size != self.task.vocab_size:
            object.__setattr__(self, "task", replace(self.task, vocab_size=self.vocab_size))

    def model_config(self, seed: int) -> TinyConfig:
        """The model of seed ``seed`` (its initial weights depend on the seed only)."""
        return TinyConfig(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            n_heads=self.n_heads,
            n_layers=self.n_layers,
            context_length=self.task.max_length,
            seed=seed,
        )

    def to_dict(self) -> dict:
        """A JSON-able dict (tuples become lists)."""
        return asdict(self)


def typical_tokens(cfg: ExperimentConfig) -> float:
    """Expected trained (response) tokens per batch: ``B * Σ_bucket share * (mean k + 1)``."""
    buckets = cfg.task.buckets
    total = sum(b.share for b in buckets)
    per_example = sum(b.share * ((b.answer[0] + b.answer[1]) / 2 + 1) for b in buckets) / total
    return cfg.batch_size * per_example


def batch_loss(
    model: TinyCausalLM,
    examples: Sequence[Example],
    arm: Arm,
    ga_steps: int = 1,
    prompt_length: int | None = None,
) -> torch.Tensor:
    """Backpropagate the arm's loss over ``examples``; returns the response token mean (detached).

    One GA loop, :func:`lossviz.step_gradients.rank_grad`. ``accumulation="none"``: one
    micro-batch, the whole batch weighted by ``weights(m, arm.reduction)``. ``"naive"`` and
    ``"global"``: the batch is dealt by :func:`lossviz.step_shape.deal` into ``K = ga_steps``
    micro-batches grouped by answer length (``group_by``, as transformers' ``group_by_length``),
    one forward/backward each, weighted by :func:`lossviz.accumulation.micro_batch_weights`
    (naive: each micro-batch's own mean / K; global: ``Σ_k Σ(m_k·l_k) / N``, N the trained tokens
    of the whole batch). Returned for logging: ``Σ m·l / Σ m`` over response tokens.
    """
    B = len(examples)
    ids, labels, mask, sids = collate(examples, arm.prompt_weight, prompt_length)
    if arm.accumulation == "none":
        plan, local = [[list(range(B))]], [[weights(mask, arm.reduction)]]
    else:
        keys = [(len(e.response), len(e.prompt)) for e in examples]
        plan = deal(B, ga_steps=ga_steps, group_by=keys)
        local = micro_batch_weights(mask, plan, reduction=arm.reduction, normalize=arm.accumulation)
    T = ids.shape[1]
    batch = Batch(ids, labels, (sids >= 0).long(), torch.arange(T).expand(B, T), sids)
    losses: list[torch.Tensor] = []
    rank_grad(model, batch, plan[0], local[0], losses_out=losses)
    # what is logged is the same for every arm: the mean loss of answer tokens
    response = collate(examples, 0.0, prompt_length)[2] if arm.prompt_weight else mask
    logged, response_tokens = 0.0, 0.0
    for rows, step_losses in zip((r for r in plan[0] if r), losses, strict=True):
        kept = response[rows]
        logged += float((step_losses * kept).sum())
        response_tokens += float(kept.sum())
    return torch.tensor(logged / response_tokens)


@torch.no_grad()
def greedy_decode(
    model: TinyCausalLM, prompts: Sequence[Sequence[int]], max_new: int, prompt_length: int
) -> list[list[int]]:
    """Greedy continuations (``max_new`` tokens each) of ``prompts`` left-padded to ``prompt_length``.

    The layout is the one :func:`.tasks.collate` trains on, so position t means the same.
    """
    examples = [Example(tuple(p), (), "", "") for p in prompts]
    ids, _, _, sids = collate(examples, prompt_length=prompt_length)
    for _ in range(max_new):
        nxt = model(ids, sample_ids=sids)[:, -1].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
        sids = torch.cat([sids, torch.zeros_like(nxt)], dim=1)
    return ids[:, prompt_length:].tolist()


@torch.no_grad()
def evaluate(
    model: TinyCausalLM,
    examples: Sequence[Example],
    buckets: Sequence[str],
    prompt_length: int,
    decode: bool = True,
) -> dict[str, dict[str, float]]:
    """Per bucket: held-out response token-mean loss, and exact-match accuracy if ``decode``."""
    model.eval()
    ids, labels, mask, sids = collate(examples, prompt_length=prompt_length)
    losses = token_losses(model(ids, sample_ids=sids), labels, shift=True)
    generated = None
    if decode:
        max_new = max(len(e.response) for e in examples)
        generated = greedy_decode(model, [e.prompt for e in examples], max_new, prompt_length)
    out = {}
    for name in buckets:
        rows = [i for i, e in enumerate(examples) if e.bucket == name]
        result = {"loss": float(reduce(losses[rows], mask[rows], "token_mean"))}
        if generated is not None:
            hits = [exact_match(generated[i], examples[i].response) for i in rows]
            result["accuracy"] = sum(hits) / len(hits)
        out[name] = result
    model.train()
    return out


def _training_batches(cfg: ExperimentConfig, seed: int) -> list[list[Example]]:
    rng = random.Random(DATA_SEED + seed)
    return [[make_example(rng, cfg.task) for _ in range(cfg.batch_size)] for _ in range(cfg.steps)]


def train_arm(
    arm: Arm,
    seed: int,
    cfg: ExperimentConfig,
    batches: list[list[Example]] | None = None,
    held_out: list[Example] | None = None,
    bar=None,
) -> dict:
    """Train one arm from seed ``seed``; returns its curves and final per-bucket results."""
    batches = batches if batches is not None else _training_batches(cfg, seed)
    held_out = held_out or balanced_examples(cfg.eval_per_bucket, EVAL_SEED, cfg.task)
    buckets = [b.name for b in cfg.task.buckets]
    model = TinyCausalLM(cfg.model_config(seed))
    P = cfg.task.max_prompt
    lr = cfg.lr / typical_tokens(cfg) if arm.lr_per_token else cfg.lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    start = time.perf_counter()
    train_loss, eval_steps, eval_loss = [], [], {b: [] for b in buckets}
    for step, examples in enumerate(batches, start=1):
        opt.zero_grad(set_to_none=True)
        loss = batch_loss(model, examples, arm, cfg.ga_steps, P)
        train_loss.append(round(float(loss), 4))
        opt.step()
        if step % cfg.eval_every == 0 or step == len(batches):
            res = evaluate(model, held_out, buckets, P, decode=False)
            eval_steps.append(step)
            for b in buckets:
                eval_loss[b].append(round(res[b]["loss"], 4))
        if bar is not None:
            bar.update(1)
    final = evaluate(model, held_out, buckets, P)
    return {
        "arm": arm.name,
        "seed": seed,
        "lr": lr,
        "train_loss": train_loss,
        "eval_steps": eval_steps,
        "eval_loss": eval_loss,
        "final": {b: {k: round(v, 4) for k, v in r.items()} for b, r in final.items()},
        "seconds": round(time.perf_counter() - start, 2),
    }


def run_experiment(cfg: ExperimentConfig | None = None, progress: bool = False) -> dict:
    """Train every arm for every seed; a JSON-able dict of the config, the runs and the timing.

    ``progress=True`` shows a tqdm bar over all training steps (leave it off in tests).
    """
    from tqdm.auto import tqdm  # imported here: only training needs it

    cfg = cfg or ExperimentConfig()
    held_out = balanced_examples(cfg.eval_per_bucket, EVAL_SEED, cfg.task)
    runs = []
    start, cpu_start = time.perf_counter(), time.process_time()
    total = len(cfg.arms) * len(cfg.seeds) * cfg.steps
    with (
        torch_threads(cfg.threads),
        tqdm(total=total, disable=not progress, desc="training") as bar,
    ):
        for seed in cfg.seeds:
            batches = _training_batches(cfg, seed)
            for name in cfg.arms:
                bar.set_postfix_str(f"{name} seed {seed}")
                runs.append(train_arm(ARMS[name], seed, cfg, batches, held_out, bar))
    return {
        "version": 1,
        "config": cfg.to_dict(),
        "buckets": [b.name for b in cfg.task.buckets],
        "arms": {name: asdict(ARMS[name]) for name in cfg.arms},
        "typical_tokens": typical_tokens(cfg),
        "eos": EOS,
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 1),  # wall clock, depends on the load
        "cpu_seconds": round(time.process_time() - cpu_start, 1),  # CPU time of this process
        "torch": torch.__version__,
    }
