"""A tiny GRPO-style RL loop: does the loss aggregation change how long wrong answers get?

The policy is :class:`~lossviz.model.TinyCausalLM` on the reverse task of :mod:`.tasks`,
warmed up by a few supervised steps (the token mean of :func:`.sft_training.batch_loss`) so that
it earns some reward. Each RL step draws ``P`` prompts, samples ``G`` responses per prompt up to
``max_new`` tokens, scores them 1 (exact match) or 0, and turns rewards into group-relative advantages
``A_i = r_i - mean_g(r)`` (divided by the group's std in arms with ``std=True``). The loss is PPO's
clipped per-token loss ``l[b, t] = -min(ρ A_b, clip(ρ, 1-ε, 1+ε) A_b)``, ``ρ = exp(logp - logp_old)``,
aggregated with ``W = lossviz.rl.mode_weights(mask, mode, max_length=max_new)``: the arms differ only
in ``W`` (and in the std division). No KL term, as in DAPO and Dr. GRPO.

Arms share, per seed, the warmed-up weights, the prompts of every step and the uniform numbers the
sampler draws (inverse-CDF sampling), so a comparison between arms is paired.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import asdict, dataclass

import torch

from ..checks import integer, positive_int
from ..devices import torch_threads
from ..model import TinyCausalLM, TinyConfig
from ..rl import mode_weights, resolve_mode
from .sft_training import ARMS as SFT_ARMS
from .sft_training import batch_loss, greedy_decode
from .tasks import (
    EOS,
    Bucket,
    Example,
    TaskConfig,
    balanced_examples,
    collate,
    exact_match,
    make_example,
)

__all__ = [
    "RLArm",
    "RL_ARMS",
    "DEFAULT_RL_ARMS",
    "RLConfig",
    "RL_TASK",
    "METRICS",
    "warm_up",
    "sample_responses",
    "group_advantages",
    "clipped_token_loss",
    "step_metrics",
    "train_rl_arm",
    "run_rl_experiment",
]

WARMUP_SEED = 2_000  # seed s warms up on random.Random(WARMUP_SEED + s)
PROMPT_SEED = 3_000  # prompts of step k of seed s: random.Random(PROMPT_SEED + 10_000 s + k)
SAMPLE_SEED = 4_000  # the sampler's uniform numbers, seeded the same way
EVAL_SEED = 10_007  # the held-out set of notebook 10
# notebook 10's buckets in equal shares, so that a third of the prompts want 6-8 answer tokens
RL_TASK = TaskConfig(
    buckets=(
        Bucket("short", (1, 2), (6, 10), 1 / 3),
        Bucket("medium", (3, 4), (3, 5), 1 / 3),
        Bucket("long", (5, 7), (0, 2), 1 / 3),
    )
)
METRICS = ("reward", "len_correct", "len_incorrect", "excess_incorrect", "hit_limit", "length")


@dataclass(frozen=True)
class RLArm:
    """One aggregation: a :data:`lossviz.rl.MODES` key, and whether advantages are divided by std."""

    name: str
    label: str
    mode: str  # e.g. "trl:grpo"
    std: bool = True

    def __post_init__(self) -> None:
        resolve_mode(self.mode)  # a clear error for an unknown mode


RL_ARMS: dict[str, RLArm] = {
    a.name: a
    for a in (
        RLArm("grpo", "GRPO: sample mean, A/std", "trl:grpo"),
        RLArm("dapo", "DAPO: token mean, A/std", "trl:dapo"),
        RLArm("dr_grpo", "Dr. GRPO: constant norm, A not scaled", "trl:dr_grpo", std=False),
        RLArm("dr_grpo_std", "constant norm, A/std", "trl:dr_grpo"),
        RLArm("grpo_no_std", "sample mean, A not scaled", "trl:grpo", std=False),
    )
}
DEFAULT_RL_ARMS = ("grpo", "dapo", "dr_grpo", "dr_grpo_std")


@dataclass(frozen=True)
class RLConfig:
    """Everything that fixes an RL experiment's numbers (the cache stores it, tests compare it)."""

    arms: tuple[str, ...] = DEFAULT_RL_ARMS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    steps: int = 80
    prompts: int = 8  # prompts per step
    group: int = 8  # G responses per prompt
    max_new: int = 16  # the length limit C (TRL max_completion_length)
    inner_steps: int = (
        2  # optimizer steps per sampled batch (GRPO's mu): clipping acts from the 2nd
    )
    clip: float = 0.2
    lr: float = 2e-3
    warmup_steps: int = 40
    warmup_lr: float = 1e-2
    warmup_batch: int = 16
    temperature: float = 1.0
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    eval_per_bucket: int = 32
    threads: int = 1
    task: TaskConfig = RL_TASK

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in RL_ARMS]
        if unknown or not self.arms or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms must be distinct names from {list(RL_ARMS)}, got {self.arms}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        ints = ("steps", "prompts", "max_new", "inner_steps", "warmup_batch", "d_model")
        for name in (*ints, "n_layers", "n_heads", "eval_per_bucket", "threads"):
            positive_int(name, getattr(self, name))
        integer("group", self.group, low=2)  # advantages compare a group's responses
        integer("warmup_steps", self.warmup_steps, low=0)
        if self.max_new < self.task.max_response:
            raise ValueError(
                f"max_new={self.max_new} is shorter than the longest correct answer "
                f"({self.task.max_response} tokens): raise max_new"
            )
        for name in ("lr", "warmup_lr", "temperature", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")

    def model_config(self, seed: int) -> TinyConfig:
        """The policy of seed ``seed`` before warm-up (its weights depend on the seed only)."""
        return TinyConfig(
            vocab_size=self.task.vocab_size,
            d_model=self.d_model,
            n_heads=self.n_heads,
            n_layers=self.n_layers,
            context_length=self.task.max_prompt + self.max_new,
            seed=seed,
        )

    def to_dict(self) -> dict:
        """A JSON-able dict (tuples become lists)."""
        return asdict(self)


def warm_up(cfg: RLConfig, seed: int) -> TinyCausalLM:
    """``cfg.warmup_steps`` supervised AdamW steps on the token mean of answer tokens."""
    model = TinyCausalLM(cfg.model_config(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.warmup_lr, weight_decay=0.0)
    rng = random.Random(WARMUP_SEED + seed)
    for _ in range(cfg.warmup_steps):
        batch = [make_example(rng, cfg.task) for _ in range(cfg.warmup_batch)]
        opt.zero_grad(set_to_none=True)
        batch_loss(model, batch, SFT_ARMS["token_mean"], prompt_length=cfg.task.max_prompt)
        opt.step()
    return model


@torch.no_grad()
def sample_responses(
    model: TinyCausalLM,
    prompts: list[Example],
    uniforms: torch.Tensor,
    max_new: int,
    prompt_length: int,
    temp: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample by inverse CDF: token ``t`` of row b is the first id whose cumulative prob > ``u[b, t]``.

    ``uniforms: [B, max_new]``. Returns ``ids`` and ``sample_ids`` ``[B, P + T]`` (prompts
    left-padded to ``P = prompt_length``, -1 on padding in ``sample_ids``; ``T <= max_new``: where
    every row has ended) and ``lengths [B]``: tokens up to and including the first EOS, or
    ``max_new`` if none came. Pre-drawn uniforms (not ``torch.multinomial``) let every arm draw
    with the same numbers.
    """
    P = prompt_length
    ids, _, _, sids = collate(prompts, prompt_length=P)
    ids, sids = ids[:, :P], sids[:, :P]
    done = torch.zeros(len(prompts), dtype=torch.bool)
    for t in range(max_new):
        probs = torch.softmax(model(ids, sample_ids=sids)[:, -1].float() / temp, dim=-1)
        cdf = probs.cumsum(dim=-1)
        nxt = torch.searchsorted(cdf, uniforms[:, t : t + 1].contiguous(), right=True)
        nxt = nxt.clamp_max(probs.shape[-1] - 1)
        ids = torch.cat([ids, nxt], dim=1)
        sids = torch.cat([sids, torch.zeros_like(nxt)], dim=1)
        done |= nxt.squeeze(1) == EOS
        if done.all():  # stop early; what a row samples after its EOS is never used
            break
    is_eos = ids[:, P:] == EOS
    first = torch.where(is_eos.any(dim=1), is_eos.float().argmax(dim=1) + 1, max_new)
    return ids, sids, first


def group_advantages(rewards: torch.Tensor, group: int, std: bool, eps: float = 1e-4):
    """``A_i = r_i - mean_g(r)`` per group of ``group`` rows, divided by ``std_g + eps`` if ``std``.

    ``rewards: [B]`` with ``B = prompts * group``, rows of one prompt adjacent. The std is torch's
    unbiased one, as in TRL's ``GRPOTrainer``; a group with equal rewards gets ``A = 0``.
    """
    r = rewards.view(-1, group)
    a = r - r.mean(dim=1, keepdim=True)
    if std:
        a = a / (r.std(dim=1, keepdim=True) + eps)
    return a.reshape(-1)


def clipped_token_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO's per-token loss ``-min(ρ A, clip(ρ, 1-ε, 1+ε) A)``, ``ρ = exp(logp - old)``: ``[B, T]``."""
    ratio = torch.exp(logp - old_logp)
    a = advantages.unsqueeze(1)
    return -torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)


def _response_logp(model: TinyCausalLM, ids, sids, P: int) -> torch.Tensor:
    logits = model(ids[:, :-1], sample_ids=sids[:, :-1])[:, P - 1 :].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, P:].unsqueeze(-1)).squeeze(-1)


def step_metrics(
    correct: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, max_new: int
) -> dict:
    """One step's numbers from ``[B]`` tensors: correct (bool), response and answer lengths.

    ``reward``: share correct; ``len_correct`` / ``len_incorrect``: mean length of those responses
    (None if there are none); ``excess_incorrect``: mean ``length - answer length`` of the incorrect
    ones (how much longer than right they are, free of which prompts were hard); ``hit_limit``: share
    whose length reached ``max_new`` (cut off, or EOS as the last allowed token; both are wrong,
    as no answer is that long); ``length``: mean length of all.
    """
    lengths, targets = lengths.float(), targets.float()
    right, wrong = lengths[correct], lengths[~correct]
    excess = (lengths - targets)[~correct]
    return {
        "reward": round(float(correct.float().mean()), 4),
        "len_correct": round(float(right.mean()), 3) if len(right) else None,
        "len_incorrect": round(float(wrong.mean()), 3) if len(wrong) else None,
        "excess_incorrect": round(float(excess.mean()), 3) if len(wrong) else None,
        "hit_limit": round(float((lengths >= max_new).float().mean()), 4),
        "length": round(float(lengths.mean()), 3),
    }


def _step_data(cfg: RLConfig, seed: int, step: int) -> tuple[list[Example], torch.Tensor]:
    rng = random.Random(PROMPT_SEED + 10_000 * seed + step)
    prompts = [make_example(rng, cfg.task) for _ in range(cfg.prompts)]
    rows = [e for e in prompts for _ in range(cfg.group)]
    gen = torch.Generator().manual_seed(SAMPLE_SEED + 10_000 * seed + step)
    return rows, torch.rand(len(rows), cfg.max_new, generator=gen)


def _held_out_accuracy(model: TinyCausalLM, cfg: RLConfig) -> float:
    held_out = balanced_examples(cfg.eval_per_bucket, EVAL_SEED, cfg.task)
    P = cfg.task.max_prompt
    out = greedy_decode(model, [e.prompt for e in held_out], cfg.max_new, P)
    hits = sum(exact_match(o, e.response) for o, e in zip(out, held_out, strict=True))
    return round(hits / len(out), 4)


def train_rl_arm(arm: RLArm, seed: int, cfg: RLConfig, start: TinyCausalLM, bar=None) -> dict:
    """RL-train a copy of ``start`` under ``arm``; per-step metrics of the sampled responses."""
    model = copy.deepcopy(start)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    P, C = cfg.task.max_prompt, cfg.max_new
    curves = {m: [] for m in METRICS}
    began = time.perf_counter()
    for step in range(cfg.steps):
        rows, uniforms = _step_data(cfg, seed, step)
        ids, sids, lengths = sample_responses(model, rows, uniforms, C, P, cfg.temperature)
        correct = torch.tensor(
            [exact_match(ids[b, P:].tolist(), e.response) for b, e in enumerate(rows)]
        )
        targets = torch.tensor([len(e.response) for e in rows])
        for name, value in step_metrics(correct, lengths, targets, C).items():
            curves[name].append(value)
        adv = group_advantages(correct.float(), cfg.group, arm.std)
        T = ids.shape[1] - P
        mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).float()
        w = mode_weights(mask, arm.mode, max_length=C)  # the arm: only W differs
        with torch.no_grad():
            old = _response_logp(model, ids, sids, P)
        for _ in range(cfg.inner_steps):
            opt.zero_grad(set_to_none=True)
            logp = _response_logp(model, ids, sids, P)
            loss = (w * clipped_token_loss(logp, old, adv, cfg.clip)).sum()
            loss.backward()
            opt.step()
        if bar is not None:
            bar.update(1)
    return {
        "arm": arm.name,
        "seed": seed,
        "curves": curves,
        "final_accuracy": _held_out_accuracy(model, cfg),
        "seconds": round(time.perf_counter() - began, 2),
    }


def run_rl_experiment(cfg: RLConfig | None = None, progress: bool = False) -> dict:
    """Warm up each seed once, then RL-train every arm from it; a JSON-able dict of it all."""
    from tqdm.auto import tqdm  # imported here: only training needs it

    cfg = cfg or RLConfig()
    runs, warm = [], {}
    start, cpu_start = time.perf_counter(), time.process_time()
    total = len(cfg.arms) * len(cfg.seeds) * cfg.steps
    with (
        torch_threads(cfg.threads),
        tqdm(total=total, disable=not progress, desc="RL steps") as bar,
    ):
        for seed in cfg.seeds:
            bar.set_postfix_str(f"warm-up seed {seed}")
            policy = warm_up(cfg, seed)
            warm[seed] = _held_out_accuracy(policy, cfg)
            for name in cfg.arms:
                bar.set_postfix_str(f"{name} seed {seed}")
                runs.append(train_rl_arm(RL_ARMS[name], seed, cfg, policy, bar))
    return {
        "version": 1,
        "config": cfg.to_dict(),
        "arms": {name: asdict(RL_ARMS[name]) for name in cfg.arms},
        "warmup_accuracy": {str(s): v for s, v in warm.items()},
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 1),  # wall clock, depends on the load
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "torch": torch.__version__,
    }
