"""The RL primer's group: one prompt, ``G`` answers sampled from notebook 14's warmed-up tiny policy.

:func:`sample_group` warms up the policy of :mod:`.rl_training` (seed ``seed``), draws one prompt of
its reverse task and samples ``G`` answers with seeded uniform numbers, so the group, its rewards
and every number computed from it are the same on every run. :func:`answer_logp` is ``log π`` of
each sampled token under a model: the quantity whose ratio ``π_θ / π_old`` PPO clips.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..checks import integer
from ..devices import torch_threads
from ..model import TinyCausalLM
from .rl_training import RLConfig, sample_responses, warm_up
from .tasks import Example, exact_match, make_example, to_text

__all__ = ["PRIMER_PROMPT_SEED", "Group", "answer_logp", "sample_group"]

PRIMER_PROMPT_SEED = (
    53  # a prompt whose group has 2 right answers of 8 and wrong ones of 4 to 7 tokens
)


@dataclass
class Group:
    """One prompt's sampled answers: ``ids, sample_ids: [G, P + T]``, ``lengths, rewards: [G]``."""

    policy: TinyCausalLM
    prompt: Example
    ids: torch.Tensor
    sample_ids: torch.Tensor
    lengths: torch.Tensor
    rewards: torch.Tensor
    prompt_length: int

    @property
    def answers(self) -> list[list[str]]:
        """Each answer's tokens as text, up to and including its ``</s>``."""
        P = self.prompt_length
        return [
            [to_text([i]) for i in self.ids[b, P : P + int(n)].tolist()]
            for b, n in enumerate(self.lengths)
        ]


def sample_group(
    group_size: int = 8, *, seed: int = 0, prompt_seed: int = PRIMER_PROMPT_SEED
) -> Group:
    """Warm up seed ``seed``'s policy, then sample ``group_size`` answers to one seeded prompt.

    Reward 1 for an exact answer, else 0. One torch thread, as in the RL experiment.
    """
    g = integer("group_size", group_size, low=2)
    cfg = RLConfig()
    P = cfg.task.max_prompt
    with torch_threads(1):
        policy = warm_up(cfg, seed)
        prompt = make_example(random.Random(prompt_seed), cfg.task)
        uniforms = torch.rand(g, cfg.max_new, generator=torch.Generator().manual_seed(prompt_seed))
        ids, sids, lengths = sample_responses(policy, [prompt] * g, uniforms, cfg.max_new, P)
    rewards = torch.tensor(
        [float(exact_match(ids[b, P:].tolist(), prompt.response)) for b in range(g)],
        dtype=torch.float64,
    )
    return Group(policy, prompt, ids, sids, lengths, rewards, P)


def answer_logp(model: TinyCausalLM, group: Group) -> torch.Tensor:
    """``log π(y_t)`` of every sampled answer token under ``model``: ``[G, T]`` (float32).

    Past an answer's ``</s>`` the values are those of whatever the sampler drew; mask them.
    """
    P, ids, sids = group.prompt_length, group.ids, group.sample_ids
    logits = model(ids[:, :-1], sample_ids=sids[:, :-1])[:, P - 1 :].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, P:, None]).squeeze(-1)
