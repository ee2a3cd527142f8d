"""A tiny causal transformer, built from a config (nothing is downloaded), for real gradients.

It honours ``position_ids`` and ``sample_ids`` (block-diagonal causal attention), so one padded and
one packed batch of the same sequences give the same per-token losses, as a FlashAttention varlen
kernel does for real models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TinyConfig", "TinyCausalLM", "attention_mask"]


@dataclass(frozen=True)
class TinyConfig:
    """Sizes of :class:`TinyCausalLM`; the defaults make a model of about 30k parameters."""

    vocab_size: int = 64
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 2
    context_length: int = 256
    seed: int = 0


def attention_mask(sample_ids: torch.Tensor) -> torch.Tensor:
    """``[B, T] -> [B, 1, T, T]`` bool: query q may see key k if k <= q and both are in one sample.

    Padding (``sample_ids == -1``) sees only itself, so no row of the softmax is empty.
    """
    T = sample_ids.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool, device=sample_ids.device).tril()
    same = sample_ids.unsqueeze(-1) == sample_ids.unsqueeze(-2)
    real = (sample_ids >= 0).unsqueeze(-2)
    eye = torch.eye(T, dtype=torch.bool, device=sample_ids.device)
    return ((causal & same & real) | eye).unsqueeze(1)


class _Block(nn.Module):
    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model),
            nn.GELU(),
            nn.Linear(4 * cfg.d_model, cfg.d_model),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (z.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp(self.ln2(x))


class TinyCausalLM(nn.Module):
    """Token + position embeddings, ``n_layers`` pre-norm blocks, a linear head: ``[B, T] -> [B, T, V]``."""

    def __init__(self, cfg: TinyConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or TinyConfig()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model={cfg.d_model} must be divisible by n_heads={cfg.n_heads}")
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(cfg.seed)  # the config alone fixes the initial weights
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context_length, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        torch.random.set_rng_state(gen_state)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        sample_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, V]``; ``position_ids``/``sample_ids`` ``[B, T]`` as in :class:`lossviz.Batch`."""
        B, T = input_ids.shape
        if T > self.cfg.context_length:
            raise ValueError(
                f"sequence length {T} exceeds context_length={self.cfg.context_length} of the config"
            )
        if position_ids is None:
            position_ids = torch.arange(T, device=input_ids.device).expand(B, T)
        if sample_ids is None:
            sample_ids = torch.zeros_like(input_ids)
        x = self.tok(input_ids) + self.pos(position_ids)
        mask = attention_mask(sample_ids)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln(x))
