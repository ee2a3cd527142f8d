"""A synthetic chat task whose answers can be scored exactly: copy or reverse a list of symbols.

One example is ``[BOS] context... [OP] x_1..x_k [SEP]`` (the prompt) followed by ``y_1..y_k [EOS]``
(the response), where ``y = x`` for ``OP = COPY`` and ``y = reversed(x)`` for ``OP = REVERSE``. The
context is random filler the model must learn to skip, so a short answer can follow a long prompt.
Buckets fix the answer length ``k`` and the context length: as in chat data, many short answers
after long prompts, fewer long answers. Token ids: ``PAD=0, BOS=1, SEP=2, EOS=3, COPY=4, REVERSE=5``,
symbols from 6 to ``vocab_size - 1``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "PAD",
    "BOS",
    "SEP",
    "EOS",
    "COPY",
    "REVERSE",
    "FIRST_SYMBOL",
    "Bucket",
    "TaskConfig",
    "Example",
    "make_example",
    "sample_examples",
    "balanced_examples",
    "collate",
    "exact_match",
    "to_text",
]

PAD, BOS, SEP, EOS, COPY, REVERSE = 0, 1, 2, 3, 4, 5
FIRST_SYMBOL = 6
OPS = {"copy": COPY, "reverse": REVERSE}
_NAMES = {PAD: "·", BOS: "<s>", SEP: "|", EOS: "</s>", COPY: "COPY", REVERSE: "REV"}


@dataclass(frozen=True)
class Bucket:
    """A response-length bucket: answer lengths ``k`` and context lengths, both inclusive ranges."""

    name: str
    answer: tuple[int, int]
    context: tuple[int, int]
    share: float  # probability that a training example comes from this bucket


@dataclass(frozen=True)
class TaskConfig:
    """The task's vocabulary and buckets (short answers after long prompts are the common case)."""

    vocab_size: int = 16
    buckets: tuple[Bucket, ...] = (
        Bucket("short", (1, 2), (6, 10), 0.6),
        Bucket("medium", (3, 4), (3, 5), 0.25),
        Bucket("long", (5, 7), (0, 2), 0.15),
    )
    ops: tuple[str, ...] = ("reverse",)

    def __post_init__(self) -> None:
        if self.vocab_size < FIRST_SYMBOL + 2:
            raise ValueError(
                f"vocab_size must be at least {FIRST_SYMBOL + 2}, got {self.vocab_size}"
            )
        if not self.ops or any(op not in OPS for op in self.ops):
            raise ValueError(f"ops must be a non-empty subset of {sorted(OPS)}, got {self.ops}")
        if not self.buckets:
            raise ValueError("a task needs at least one bucket")
        for b in self.buckets:
            (a0, a1), (c0, c1) = b.answer, b.context
            if not (1 <= a0 <= a1 and 0 <= c0 <= c1 and b.share >= 0):
                raise ValueError(
                    f"bucket {b.name!r}: need 1 <= answer lo <= hi, 0 <= context lo <= hi"
                )
        if sum(b.share for b in self.buckets) <= 0:
            raise ValueError("bucket shares must not all be 0")

    @property
    def max_response(self) -> int:
        """Longest response in tokens, EOS included."""
        return max(b.answer[1] for b in self.buckets) + 1

    @property
    def max_prompt(self) -> int:
        """Longest prompt in tokens: BOS, context, OP, operand, SEP."""
        return max(b.context[1] + b.answer[1] for b in self.buckets) + 3

    @property
    def max_length(self) -> int:
        """A length no sequence exceeds, even a batch of left-padded prompts plus their answers."""
        return self.max_prompt + self.max_response

    @classmethod
    def from_dict(cls, stored: dict) -> TaskConfig:
        """The config a results file stored (JSON lists back to tuples)."""
        stored = dict(stored)
        buckets = tuple(
            Bucket(b["name"], tuple(b["answer"]), tuple(b["context"]), b["share"])
            for b in stored.pop("buckets")
        )
        return cls(
            buckets=buckets,
            **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()},
        )


@dataclass(frozen=True)
class Example:
    """One prompt/response pair; ``response`` ends with EOS."""

    prompt: tuple[int, ...]
    response: tuple[int, ...]
    bucket: str
    op: str


def make_example(rng: random.Random, cfg: TaskConfig, bucket: Bucket | None = None) -> Example:
    """Draw one example (from ``bucket``, or a bucket drawn by its share) with ``rng``."""
    if bucket is None:
        bucket = rng.choices(cfg.buckets, weights=[b.share for b in cfg.buckets])[0]
    k = rng.randint(*bucket.answer)
    context = [
        rng.randrange(FIRST_SYMBOL, cfg.vocab_size) for _ in range(rng.randint(*bucket.context))
    ]
    op = rng.choice(sorted(cfg.ops))
    x = [rng.randrange(FIRST_SYMBOL, cfg.vocab_size) for _ in range(k)]
    y = x if op == "copy" else x[::-1]
    prompt = (BOS, *context, OPS[op], *x, SEP)
    return Example(prompt, (*y, EOS), bucket.name, op)


def sample_examples(n: int, seed: int, cfg: TaskConfig | None = None) -> list[Example]:
    """``n`` examples drawn by bucket share; the same ``seed`` gives the same list."""
    cfg = cfg or TaskConfig()
    rng = random.Random(seed)
    return [make_example(rng, cfg) for _ in range(n)]


def balanced_examples(per_bucket: int, seed: int, cfg: TaskConfig | None = None) -> list[Example]:
    """``per_bucket`` examples from every bucket (a held-out set that measures each bucket alike)."""
    cfg = cfg or TaskConfig()
    rng = random.Random(seed)
    return [make_example(rng, cfg, b) for b in cfg.buckets for _ in range(per_bucket)]


def collate(
    examples: Sequence[Example], prompt_weight: float = 0.0, prompt_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``input_ids, labels, mask, sample_ids``, each ``[B, T]``: prompts left-padded, answers right.

    Every prompt is left-padded to ``prompt_length`` (default: the longest in the batch), so SEP sits
    at position ``prompt_length - 1`` in every row, as in batched generation. ``sample_ids`` is -1 on
    padding (attended by nothing) and 0 on real tokens; ``labels`` is -100 on padding and on BOS.
    ``mask[b, t]`` weighs the loss of position t, which predicts token t+1 (``shift=True``): 1 for a
    response token (EOS included), ``prompt_weight`` for a prompt token after BOS, 0 elsewhere.
    """
    if not examples:
        raise ValueError("collate needs at least one example")
    if not 0.0 <= prompt_weight <= 1.0:
        raise ValueError(f"prompt_weight must lie in [0, 1], got {prompt_weight}")
    P = max(len(e.prompt) for e in examples)
    if prompt_length is not None:
        if prompt_length < P:
            raise ValueError(
                f"prompt_length={prompt_length} is shorter than a prompt of {P} tokens"
            )
        P = prompt_length
    T = P + max(len(e.response) for e in examples)
    ids = torch.full((len(examples), T), PAD, dtype=torch.long)
    labels = torch.full((len(examples), T), -100, dtype=torch.long)
    sample_ids = torch.full((len(examples), T), -1, dtype=torch.long)
    mask = torch.zeros(len(examples), T)
    for b, e in enumerate(examples):
        start, end = P - len(e.prompt), P + len(e.response)
        ids[b, start:end] = torch.tensor(e.prompt + e.response)
        labels[b, start + 1 : end] = ids[b, start + 1 : end]
        sample_ids[b, start:end] = 0
        mask[b, start : P - 1] = prompt_weight  # these positions predict prompt tokens after BOS
        mask[b, P - 1 : end - 1] = 1.0  # SEP .. last answer token predict the response
    return ids, labels, mask, sample_ids


def exact_match(generated: Sequence[int], target: Sequence[int]) -> bool:
    """True iff ``generated`` up to and including its first EOS equals ``target`` (which ends in EOS)."""
    generated = list(generated)
    end = generated.index(EOS) + 1 if EOS in generated else len(generated)
    return generated[:end] == list(target)


def to_text(ids: Sequence[int]) -> str:
    """Token ids as readable text: special tokens by name, symbols as letters ``a, b, ...``."""
    return " ".join(
        _NAMES.get(t) or (chr(ord("a") + t - FIRST_SYMBOL) if t - FIRST_SYMBOL < 26 else f"s{t}")
        for t in ids
    )
