"""Measure the weight a real training step gives each token, from one backward pass.

``L = Σ W·l`` with ``l[b, t] = −log p(y_t)``: the probe reads every token's ``W`` off the gradient
that reaches whatever the loss was computed from. Three places, one number:

**Logits** ``z: [B, T, V]`` (a model that returns them). For cross-entropy at a position with weight
``w`` the gradient is ``g = w (p − e_y)`` with ``p = softmax(z)``, so

    w = <g, p − e_y> / ||p − e_y||²,     residual = ||g − w (p − e_y)|| / ||g||

A residual at float rounding (``< 1e-5`` in float32) says the loss *is* weighted cross-entropy at
that position; label smoothing, a z-loss or a KL term leave a larger residual, and the probe reports
it instead of a silently wrong ``w``.

**Log-probabilities** ``log p_y: [B, T]`` (a fused LM head, e.g. TRL ≥ 1.7's default SFT forward,
which returns ``FusedCausalLMOutput.log_probs`` and never the logits). Here ``W = −∂L/∂log p_y``
exactly. An ignored position's log-prob is a constant, so it gets
``W = 0``; what can be checked is only that the model's own mask of scored labels (TRL's
``label_mask``) agrees with the labels (residual 1 where not). What cannot: whether the loss is
cross-entropy. Every loss that reaches the distribution only through
``log p_y`` reads as a weight here (DFT's ``p·l`` gives ``W = p/N``, a focal loss its own factor),
and a term that bypasses ``log p_y`` (label smoothing, a z-loss, an entropy bonus) is not seen at all;
only the logits' full ``V`` components allow the residual test.

**Hidden state** ``h: [B, T, D]`` fed to the LM head ``W_head: [V, D]`` (a fused or chunked
cross-entropy kernel that exposes neither logits nor log-probs: Liger's, Cut Cross-Entropy, TRL's
fallback). The chain rule gives ``g_h = W_headᵀ · w (p − e_y) = w u`` with ``p = softmax(W_head h +
b)``, so per position ``w = <g_h, u> / ||u||²`` and ``residual = ||g_h − w u|| / ||g_h||``, computed
in chunks of positions (one ``[chunk, V]`` temporary, whatever ``B × T``). This residual only says
``g_h`` is parallel to ``u`` in ``D`` dimensions, a weaker test than the logits'.

    with lv.probe(model) as rec:      # hooks the model's output (and its backbone) and gradients
        trainer.train()               # or your own loop: forward, backward, optimizer.step()
    rec.W(step=0)                     # [B, T] per-token weights, aligned to the labels

The loss that predicts ``labels[b, t]`` is reported at ``[b, t]``: a causal LM scores
``labels[b, t + 1]`` at position ``t`` (transformers shifts inside its loss), so the probe shifts
back; ``W[:, 0]`` is 0. Under DDP each rank records the weight of its own loss; DDP then averages
gradients over the ``R`` ranks, so the step's weight is that ``W / R`` (:attr:`MicroBatch.step_W`).
``save_to=DIR`` writes each rank's record to ``DIR/rank{p}.json`` on exit; ``lossviz probe-merge
DIR`` (:func:`load_records`) puts the ranks back together into the step's ``W``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "RESIDUAL_TOL",
    "MicroBatch",
    "ProbeRecord",
    "infer_labels",
    "load_records",
    "probe",
    "recover_weights",
    "recover_weights_hidden",
    "residual_tol",
]

# Plain CE with float32 logits and gradients leaves a relative residual of about 4e-8 (measured on
# vocabularies of 64 to 151936: one float32 rounding of g); label smoothing 0.1 leaves ~1e-1 and a
# z-loss of 1e-4 ~1.5e-4. A bf16/fp16 gradient is itself rounded to ~eps, so its bound is 4 eps.
RESIDUAL_TOL = 1e-5
# values per temporary of the chunked passes (1 MiB in float32): each chunk's passes over the
# vocabulary stay in the CPU cache, so only the first read of z and g goes to memory
_CHUNK = 2**18
# from this vocabulary on, one position per chunk: fewer, cheaper kernels than batched rows
_ROW_VOCAB = 8192
VIAS = ("auto", "logits", "log_probs", "hidden")


def residual_tol(dtype: torch.dtype) -> float:
    """The residual below which a gradient of this dtype counts as plain weighted CE."""
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return max(RESIDUAL_TOL, 4 * eps) if eps > torch.finfo(torch.float32).eps else RESIDUAL_TOL


def _check_labels(labels: torch.Tensor, V: int, ignore_index: int) -> None:
    valid = labels != ignore_index
    if bool(((labels < 0) | (labels >= V))[valid].any()):
        raise ValueError(
            f"labels must lie in [0, {V}) or equal ignore_index={ignore_index}; got "
            f"{labels[valid].min().item()}..{labels[valid].max().item()}"
        )


def recover_weights(
    logits: torch.Tensor, labels: torch.Tensor, grad: torch.Tensor, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, residual)``: each position's CE weight from its logits' gradient, as float64.

    ``logits, grad: [..., V]``, ``labels: [...]`` (the target scored by those logits, already
    shifted). ``W = <g, p - e_y> / ||p - e_y||^2`` with ``p = softmax(logits)``;
    ``residual = ||g - W (p - e_y)|| / ||g||`` (0 where ``g == 0``). An ignored position has
    ``W = 0`` and residual 1 if its gradient is not zero (the loss trained a token it should not).
    Computed in the gradient's precision, at least float32.
    """
    if logits.shape != grad.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and grad {tuple(grad.shape)} must have the same shape"
        )
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels {tuple(labels.shape)} must be logits' shape without the vocab axis, "
            f"{tuple(logits.shape[:-1])}"
        )
    _check_labels(labels, logits.shape[-1], ignore_index)
    _, W, residual = _weights_by_chunks(logits, grad, labels, ignore_index)
    return W, residual


def _dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is, else float32 (bf16/fp16 gradients are widened)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _rows_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[n]``: the row-wise dot products of ``a, b: [n, K]``."""
    if a.shape[0] == 1:
        return (a[0] @ b[0]).reshape(1)  # one BLAS pass, no temporary
    return torch.linalg.vecdot(a, b)


def _recover(z, g, t, ignore_index) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(targets, W, residual)`` of the rows ``z, g: [n, V]`` (one dtype); ``t`` None: inferred.

    ``p − e_y`` is never built. With ``e = exp(z − max z)`` and ``s = Σ e`` (so ``p = e / s``):
    ``<g, p − e_y> = <g, e>/s − g_y`` and ``||p − e_y||² = <e, e>/s² − 2 p_y + 1``; the scalars are
    float64, and the residual ``g − (W/s) e + W e_y`` is formed in ``e``'s own buffer.
    """
    if t is None:
        t = _infer(g, ignore_index)
    valid = t != ignore_index
    y = torch.where(valid, t, 0).unsqueeze(-1)
    on = valid.double()
    e = torch.sub(z, z.amax(dim=-1, keepdim=True)).exp_()
    s = e.sum(dim=-1).double()
    g_y = g.gather(-1, y).squeeze(-1).double() * on
    p_y = e.gather(-1, y).squeeze(-1).double() / s * on
    gd = _rows_dot(g, e).double() / s - g_y
    dd = _rows_dot(e, e).double() / s**2 - 2 * p_y + on
    fit = valid & (dd > 0)
    W = torch.where(fit, gd / torch.where(fit, dd, 1.0), 0.0)
    rest = e.mul_((-W / s).to(e.dtype).unsqueeze(-1)).add_(g)
    rest = rest.scatter_add_(-1, y, (W * on).to(e.dtype).unsqueeze(-1)).norm(dim=-1).double()
    gn = g.norm(dim=-1).double()
    residual = torch.where(gn > 0, rest / torch.where(gn > 0, gn, 1.0), 0.0)
    return t, W, residual


def infer_labels(
    logits: torch.Tensor, grad: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """``labels: [...]``: the target each position's gradient trained, read from the gradient.

    For CE, ``g_y = w (p_y − 1)`` and ``g_j = w p_j`` elsewhere, so ``|g_y| = Σ_{j≠y} |g_j|``: the
    label is the component of largest ``|g|`` (unique unless the other probability sits on one
    class). A zero gradient gives ``ignore_index``. ``logits, grad: [..., V]`` with ``V >= 3``.
    """
    if logits.shape[-1] < 3:
        raise ValueError("infer_labels needs a vocabulary of at least 3 classes; pass labels")
    if logits.shape != grad.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and grad {tuple(grad.shape)} must have the same shape"
        )
    V = grad.shape[-1]
    return _infer(grad.detach().reshape(-1, V), ignore_index).reshape(grad.shape[:-1])


def _infer(g: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``[n]`` labels of the rows ``g: [n, V]``: the component of largest ``|g|``."""
    lo, y = g.min(dim=-1)
    hi = g.amax(dim=-1)
    up = -lo < hi  # a negative weight: the label's component is the largest positive one
    if bool(up.any()):
        y = torch.where(up, g.max(dim=-1).indices, y)
    return torch.where((lo == 0) & (hi == 0), ignore_index, y)


def _weights_by_chunks(
    z: torch.Tensor, g: torch.Tensor, tgt: torch.Tensor | None, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(targets, W, residual)`` over ``[..., V]`` in chunks of positions (inferring targets if None).

    A chunk holds about 2**18 values per temporary, so its passes over the vocabulary run in the
    CPU cache and the probe's memory stays flat; every position is computed alone. From
    ``V >= 8192`` a chunk is one position (:func:`_recover_rows`).
    """
    V = z.shape[-1]
    dt = _dtype(z, g)
    zf, gf = z.detach().reshape(-1, V), g.detach().reshape(-1, V)
    tf = None if tgt is None else tgt.reshape(-1)
    n = zf.shape[0]
    out_t = torch.empty(n, dtype=torch.long, device=z.device)
    out_w = torch.empty(n, dtype=torch.float64, device=z.device)
    out_r = torch.empty(n, dtype=torch.float64, device=z.device)
    shape = z.shape[:-1]
    rows = max(1, _CHUNK // V)
    if V >= _ROW_VOCAB:
        _recover_rows(zf, gf, tf, ignore_index, dt, out_t, out_w, out_r)
        return out_t.reshape(shape), out_w.reshape(shape), out_r.reshape(shape)
    for i in range(0, n, rows):
        j = min(n, i + rows)
        t = None if tf is None else tf[i:j]
        out_t[i:j], out_w[i:j], out_r[i:j] = _recover(
            zf[i:j].to(dt), gf[i:j].to(dt), t, ignore_index
        )
    return out_t.reshape(shape), out_w.reshape(shape), out_r.reshape(shape)


def _recover_rows(zf, gf, tf, ignore_index, dt, out_t, out_w, out_r) -> None:
    """:func:`_recover` one position at a time into ``out_*`` (a large vocabulary).

    One ``[V]`` buffer for ``e`` and then the residual, scalars as Python floats: per position a
    dozen passes over a row that stays in the CPU cache, and no work past the gradient's norm at
    an ignored position. A label not given is read from the gradient: CE's ``g`` has exactly one
    component of the other sign than the rest, the label's; its index is ``<g⁻, arange> / Σ g⁻``
    over the negative part ``g⁻`` (a BLAS pass instead of torch's slower argmin), checked, and
    :func:`_infer` (largest ``|g|``) where the check fails.
    """
    V = zf.shape[-1]
    buf = torch.empty(V, dtype=dt, device=zf.device)
    ar = torch.arange(V, dtype=dt, device=zf.device) if tf is None else None
    labels = None if tf is None else tf.tolist()
    if labels is not None:  # the label's logit and gradient of every position, gathered at once
        at = tf.clamp(0, V - 1).unsqueeze(-1)
        z_at, g_at = zf.gather(1, at).double().tolist(), gf.gather(1, at).double().tolist()
    for i in range(zf.shape[0]):
        z, g = zf[i], gf[i]
        if z.dtype != dt:
            z, g = z.to(dt), g.to(dt)
        gn = float(g @ g) ** 0.5
        if labels is not None:
            y = labels[i]
        elif gn == 0:
            y = ignore_index
        else:
            neg = torch.clamp(g, max=0, out=buf)
            mass = float(neg.sum())
            y = round(float(neg @ ar) / mass) if mass < 0 else -1
            if not (0 <= y < V and float(g[y]) == mass):  # not one negative component
                y = int(_infer(g.unsqueeze(0), ignore_index)[0])
        out_t[i] = y
        if y == ignore_index or gn == 0:
            out_w[i], out_r[i] = 0.0, (1.0 if gn > 0 else 0.0)
            continue
        z_y, g_y = (z_at[i][0], g_at[i][0]) if labels is not None else (float(z[y]), float(g[y]))
        m = z.max()
        torch.sub(z, m, out=buf).exp_()
        s = float(buf.sum())
        p_y = math.exp(z_y - float(m)) / s
        gd = float(g @ buf) / s - g_y
        dd = float(buf @ buf) / s**2 - 2 * p_y + 1
        w = gd / dd if dd > 0 else 0.0
        torch.add(g, buf, alpha=-w / s, out=buf)  # the residual g - W p + W e_y, in place
        buf.narrow(0, y, 1).add_(w)
        out_w[i], out_r[i] = w, float(buf.norm()) / gn


def recover_weights_hidden(
    hidden: torch.Tensor,
    head_weight: torch.Tensor,
    labels: torch.Tensor,
    grad: torch.Tensor,
    head_bias: torch.Tensor | None = None,
    ignore_index: int = -100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, residual)`` from the gradient at the hidden state fed to the LM head, as float64.

    ``hidden, grad: [..., D]``, ``head_weight: [V, D]``, ``labels: [...]`` (already shifted).
    ``p = softmax(hidden W_headᵀ + b)``, ``u = W_headᵀ (p − e_y) = p W_head − W_head[y]``;
    ``W = <g, u> / ||u||²``, ``residual = ||g − W u|| / ||g||``. Chunked over positions: one
    ``[chunk, V]`` temporary. Exact for logits ``= h W_headᵀ + b`` (no temperature, scale or
    soft-cap: with one, the residual shows it).
    """
    if hidden.shape != grad.shape:
        raise ValueError(
            f"hidden {tuple(hidden.shape)} and grad {tuple(grad.shape)} must have the same shape"
        )
    if head_weight.dim() != 2 or head_weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"head_weight must be [V, D] with D = {hidden.shape[-1]} (the hidden size); got "
            f"{tuple(head_weight.shape)}"
        )
    if labels.shape != hidden.shape[:-1]:
        raise ValueError(
            f"labels {tuple(labels.shape)} must be hidden's shape without the last axis, "
            f"{tuple(hidden.shape[:-1])}"
        )
    V, D = head_weight.shape
    _check_labels(labels, V, ignore_index)
    # float64 for a head that fits in 128 MiB as float64, else the head's precision (>= float32)
    dt = torch.float64 if V * D <= 2**24 else _dtype(head_weight, grad)
    Wh = head_weight.detach().to(dt)
    bh = None if head_bias is None else head_bias.detach().to(dt)
    hf, gf = hidden.detach().reshape(-1, D), grad.detach().reshape(-1, D)
    tf = labels.reshape(-1)
    n = hf.shape[0]
    rows = max(1, _CHUNK // V)
    out_w = torch.zeros(n, dtype=torch.float64, device=hidden.device)
    out_r = torch.zeros(n, dtype=torch.float64, device=hidden.device)
    for i in range(0, n, rows):
        j = min(n, i + rows)
        t, g = tf[i:j], gf[i:j].to(dt)
        valid = t != ignore_index
        z = hf[i:j].to(dt) @ Wh.T
        if bh is not None:
            z += bh
        p = torch.softmax(z, dim=-1)
        u = p @ Wh - Wh[torch.where(valid, t, 0)]
        u[~valid] = 0.0
        uu = _rows_dot(u, u)
        fit = valid & (uu > 0)
        w = torch.where(fit, _rows_dot(g, u) / torch.where(fit, uu, 1.0), 0.0)
        rest = (g - w.unsqueeze(-1) * u).norm(dim=-1)
        gn = g.norm(dim=-1)
        out_w[i:j] = w.double()
        out_r[i:j] = torch.where(gn > 0, rest / torch.where(gn > 0, gn, 1.0), 0.0).double()
    shape = hidden.shape[:-1]
    return out_w.reshape(shape), out_r.reshape(shape)


@dataclass
class MicroBatch:
    """One forward/backward the probe saw. ``W, residual, labels: [B, T]`` aligned to the labels.

    ``grad`` (``keep_grads=True`` only) is the gradient the probe read, at its own positions
    (unshifted): ``[B, T, V]`` logits', ``[B, T']`` log-probs' or ``[B, T, D]`` hidden state's.
    ``via`` says which (``"logits"``, ``"log_probs"``, ``"hidden"``); ``step`` counts the
    optimizer steps taken before this micro-batch; ``rank`` is the process's rank (0 without
    torch.distributed), ``world_size`` the group's size.
    """

    labels: torch.Tensor
    W: torch.Tensor
    residual: torch.Tensor
    grad: torch.Tensor | None
    step: int
    rank: int
    world_size: int
    labels_inferred: bool = False
    position_ids: torch.Tensor | None = None
    tol: float = RESIDUAL_TOL  # residual_tol of the gradient's dtype
    via: str = "logits"

    @property
    def step_W(self) -> torch.Tensor:
        """``W / world_size``: this rank's weights after DDP's mean over ranks."""
        return self.W / self.world_size

    @property
    def max_residual(self) -> float:
        """The largest relative residual (0.0 for an all-zero gradient)."""
        return float(self.residual.max()) if self.residual.numel() else 0.0

    def to_json(self) -> dict:
        """The micro-batch as JSON-ready lists (no gradient)."""
        return {
            "labels": self.labels.tolist(),
            "W": self.W.tolist(),
            "residual": self.residual.tolist(),
            "step": self.step,
            "rank": self.rank,
            "world_size": self.world_size,
            "labels_inferred": self.labels_inferred,
            "position_ids": None if self.position_ids is None else self.position_ids.tolist(),
            "tol": self.tol,
            "via": self.via,
        }

    @classmethod
    def from_json(cls, d: dict) -> MicroBatch:
        """The inverse of :meth:`to_json`."""
        pos = d.get("position_ids")
        return cls(
            labels=torch.tensor(d["labels"], dtype=torch.long),
            W=torch.tensor(d["W"], dtype=torch.float64),
            residual=torch.tensor(d["residual"], dtype=torch.float64),
            grad=None,
            step=int(d["step"]),
            rank=int(d["rank"]),
            world_size=int(d["world_size"]),
            labels_inferred=bool(d.get("labels_inferred", False)),
            position_ids=None if pos is None else torch.tensor(pos, dtype=torch.long),
            tol=float(d.get("tol", RESIDUAL_TOL)),
            via=d.get("via", "logits"),
        )


@dataclass
class ProbeRecord:
    """What :func:`probe` recorded: the micro-batches in forward order and the optimizer steps."""

    slots: list[MicroBatch | None] = field(default_factory=list)  # None: no gradient (yet)
    optimizer_steps: int = 0

    @property
    def micro_batches(self) -> list[MicroBatch]:
        """Every micro-batch whose output received a gradient, in forward order."""
        return [mb for mb in self.slots if mb is not None]

    @property
    def unmatched(self) -> int:
        """Forwards whose output got no gradient (evaluation, or a loss never backpropagated)."""
        return sum(mb is None for mb in self.slots)

    def for_step(self, step: int) -> list[MicroBatch]:
        """The micro-batches accumulated into optimizer step ``step`` (0-based)."""
        return [mb for mb in self.micro_batches if mb.step == step]

    def W(self, step: int = 0) -> torch.Tensor:
        """``[sum B, T_max]`` step weights (``W / world_size``) of one step's micro-batches, stacked."""
        mbs = self.for_step(step)
        if not mbs:
            raise ValueError(
                f"no micro-batch was recorded for step={step}; steps seen: "
                f"{sorted({mb.step for mb in self.micro_batches})}"
            )
        T = max(mb.W.shape[-1] for mb in mbs)
        return torch.cat([nn.functional.pad(mb.step_W, (0, T - mb.W.shape[-1])) for mb in mbs])

    @property
    def max_residual(self) -> float:
        """The largest residual over every recorded micro-batch."""
        return max((mb.max_residual for mb in self.micro_batches), default=0.0)

    def is_cross_entropy(self, tol: float | None = None) -> bool:
        """Whether every recorded gradient has the form ``w (p - e_y)`` (residual below ``tol``,
        by default :func:`residual_tol` of each gradient's dtype). On the log-prob path this only
        checks the model's mask of scored labels (see the module's docstring)."""
        return all(mb.max_residual < (tol or mb.tol) for mb in self.micro_batches)

    def save(self, folder: str | os.PathLike, rank: int | None = None) -> str:
        """Write this record to ``folder/rank{rank}.json`` (atomically); returns the path."""
        rank = rank if rank is not None else _dist_rank()[0]
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(os.fspath(folder), f"rank{rank}.json")
        data = {
            "format": "lossviz-probe-record/1",
            "rank": rank,
            "world_size": max([mb.world_size for mb in self.micro_batches] or [_dist_rank()[1]]),
            "optimizer_steps": self.optimizer_steps,
            "unmatched": self.unmatched,
            "micro_batches": [mb.to_json() for mb in self.micro_batches],
        }
        with open(path + ".tmp", "w") as f:
            json.dump(data, f)
        os.replace(path + ".tmp", path)
        return path


def load_records(folder: str | os.PathLike) -> list[ProbeRecord]:
    """The records ``probe(..., save_to=folder)`` wrote, one per rank, in rank order.

    Raises ``ValueError`` naming the problem when the folder holds no record, a rank is missing or
    the ranks disagree on the world size.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"{folder!r} is not a folder; pass the save_to= folder of lv.probe")
    names = sorted(n for n in os.listdir(folder) if n.startswith("rank") and n.endswith(".json"))
    if not names:
        raise ValueError(
            f"{folder!r} holds no rank*.json record: run the script with "
            "lv.probe(model, save_to=this folder) first"
        )
    data = []
    for n in names:
        with open(os.path.join(folder, n)) as f:
            d = json.load(f)
        if d.get("format") != "lossviz-probe-record/1":
            raise ValueError(f"{n} is not a lossviz probe record")
        data.append(d)
    data.sort(key=lambda d: d["rank"])
    worlds = {d["world_size"] for d in data}
    ranks = [d["rank"] for d in data]
    if len(worlds) != 1:
        raise ValueError(f"the records disagree on the world size: {sorted(worlds)}")
    R = worlds.pop()
    if ranks != list(range(R)):
        raise ValueError(f"a run of {R} ranks needs rank0..rank{R - 1}.json; found ranks {ranks}")
    out = []
    for d in data:
        rec = ProbeRecord(optimizer_steps=d["optimizer_steps"])
        rec.slots = [MicroBatch.from_json(m) for m in d["micro_batches"]]
        rec.slots += [None] * int(d.get("unmatched", 0))
        out.append(rec)
    return out


def _field(output, name: str):
    value = getattr(output, name, None)
    if value is None and isinstance(output, dict):
        value = output.get(name)
    return value if isinstance(value, torch.Tensor) else None


def _logits(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    logits = _field(output, "logits")
    if logits is None:
        raise TypeError(
            f"lv.probe could not find logits in the model's output ({type(output).__name__}); "
            "pass logits_of=lambda output: <the [B, T, V] logits tensor>"
        )
    return logits


def _hidden_state(output) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    h = _field(output, "last_hidden_state")
    if h is None and isinstance(output, (tuple, list)) and output:
        h = output[0] if isinstance(output[0], torch.Tensor) else None
    return h


def _dist_rank() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class probe:  # noqa: N801 - used as ``with lv.probe(model) as rec``
    """``with lv.probe(model) as rec``: record every micro-batch's per-token weight ``W: [B, T]``.

    Hooks ``model``'s forward (its ``labels``/``shift_labels``/``position_ids`` keyword arguments
    and its output) and the gradient of what the loss was computed from. ``via="auto"`` takes the
    output's ``logits`` if it has them, else its ``log_probs`` (a fused LM head such as TRL's),
    else the hidden state entering the LM head: the output of ``hidden`` (default
    ``model.base_model``) with the head ``head`` (default ``model.get_output_embeddings()``);
    ``via`` names one of them to force it. ``logits_of(output) -> [B, T, V]`` picks logits from
    another output layout. Labels not passed to the model are read from the logits' gradient
    (:func:`infer_labels`; the other paths need them). ``shift=1``: position ``t`` scores the label
    at ``t + 1``. ``keep_grads=True`` keeps each gradient the probe read (``[B, T, V]`` on the
    logits path: large). ``save_to=DIR`` writes the record to ``DIR/rank{p}.json`` on exit.
    Training is unchanged: the hooks read tensors and return nothing.
    """

    def __init__(
        self,
        model: nn.Module,
        logits_of=None,
        *,
        via: str = "auto",
        hidden: nn.Module | None = None,
        head: nn.Module | None = None,
        shift: int = 1,
        ignore_index: int = -100,
        keep_grads: bool = False,
        save_to: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"lv.probe needs an nn.Module, got {type(model).__name__}")
        if logits_of is not None and not callable(logits_of):
            raise TypeError("logits_of must be a callable output -> logits tensor [B, T, V]")
        if shift not in (0, 1):
            raise ValueError(f"shift must be 0 (labels aligned) or 1 (causal LM), got {shift!r}")
        if via not in VIAS:
            raise ValueError(f"via must be one of {VIAS}, got {via!r}")
        for name, m in (("hidden", hidden), ("head", head)):
            if m is not None and not isinstance(m, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(m).__name__}")
        self.model = model
        self.logits_of = logits_of
        self.via = via
        self.hidden = hidden
        self.head = head
        self.shift = shift
        self.ignore_index = ignore_index
        self.keep_grads = keep_grads
        self.save_to = save_to
        self.record = ProbeRecord()
        self._handles: list = []
        self._inputs: dict = {}
        self._h: torch.Tensor | None = None

    def _backbone(self) -> nn.Module | None:
        if self.hidden is not None:
            return self.hidden
        base = getattr(self.model, "base_model", None)
        return base if isinstance(base, nn.Module) and base is not self.model else None

    def _head(self) -> nn.Module:
        head = self.head
        if head is None and hasattr(self.model, "get_output_embeddings"):
            head = self.model.get_output_embeddings()
        if head is None or not isinstance(getattr(head, "weight", None), torch.Tensor):
            raise TypeError(
                "lv.probe(via='hidden') needs the LM head: pass head=<the module whose weight "
                "[V, D] maps the hidden state to logits>"
            )
        return head

    def __enter__(self) -> ProbeRecord:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._handles = [
            self.model.register_forward_pre_hook(self._pre_hook, with_kwargs=True),
            self.model.register_forward_hook(self._hook),
            register_optimizer_step_post_hook(self._on_step),
        ]
        backbone = self._backbone() if self.via in ("auto", "hidden") else None
        if backbone is not None:
            self._handles.append(backbone.register_forward_hook(self._hidden_hook))
        elif self.via == "hidden":
            raise TypeError(
                "lv.probe(via='hidden') needs the module whose output is the hidden state fed "
                "to the LM head: pass hidden=<that module> (transformers: model.base_model)"
            )
        return self.record

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self.save_to is not None and exc[0] is None:
            ranks = {mb.rank for mb in self.record.micro_batches}
            self.record.save(self.save_to, ranks.pop() if len(ranks) == 1 else None)

    def _on_step(self, optimizer, args, kwargs) -> None:
        self.record.optimizer_steps += 1

    def _pre_hook(self, module, args, kwargs) -> None:
        self._h = None
        self._inputs = {
            k: kwargs[k].detach() if isinstance(kwargs.get(k), torch.Tensor) else None
            for k in ("labels", "shift_labels", "position_ids")
        }

    def _hidden_hook(self, module, args, output) -> None:
        h = _hidden_state(output)
        if h is not None and h.requires_grad:
            self._h = h

    def _source(self, output) -> tuple[str, torch.Tensor] | None:
        """``(via, tensor)`` whose gradient this forward is read from (None: no gradient)."""
        if self.via in ("auto", "logits"):
            if self.logits_of is not None or self.via == "logits":
                logits = (self.logits_of or _logits)(output)
            else:
                logits = output if isinstance(output, torch.Tensor) else _field(output, "logits")
            if logits is not None:
                return ("logits", logits) if logits.requires_grad else None
        if self.via in ("auto", "log_probs"):
            lp = _field(output, "log_probs")
            if lp is not None:
                return ("log_probs", lp) if lp.requires_grad else None
            if self.via == "log_probs":
                raise TypeError(
                    f"lv.probe(via='log_probs'): the model's output ({type(output).__name__}) "
                    "has no log_probs tensor"
                )
        if self._h is not None:
            return "hidden", self._h
        if self.via == "hidden" or self._backbone() is not None:
            return None  # the backbone ran without gradient
        raise TypeError(
            f"lv.probe could not find logits in the model's output ({type(output).__name__}); "
            "pass logits_of=lambda output: <the [B, T, V] logits tensor>, or hidden=<the "
            "module feeding the LM head> and head=<the LM head> for a fused loss"
        )

    def _hook(self, module, args, output) -> None:
        if not torch.is_grad_enabled():
            return
        found = self._source(output)
        self._h = None
        if found is None:
            return
        via, tensor = found
        inputs, self._inputs = self._inputs, {}
        step, (rank, world) = self.record.optimizer_steps, _dist_rank()
        x = tensor.detach()
        scored = _field(output, "label_mask") if via == "log_probs" else None
        head = None
        if via == "hidden":
            head = self._head()
        slot = len(self.record.slots)
        self.record.slots.append(None)  # kept in forward order, filled when the gradient arrives

        def on_grad(g: torch.Tensor) -> None:
            g = g.detach()
            if via == "logits":
                mb = self._measure(x, g, inputs)
            elif via == "log_probs":
                mb = self._measure_log_probs(x, g, inputs, scored)
            else:
                mb = self._measure_hidden(x, g, inputs, head)
            mb.step, mb.rank, mb.world_size = step, rank, world
            self.record.slots[slot] = mb

        tensor.register_hook(on_grad)

    def _targets(self, shape, device, inputs, need: str | None = None) -> torch.Tensor | None:
        """Targets scored by each position ``[B, T]``; None: read them from the gradient."""
        B = shape[0]
        fill = torch.full((B, self.shift), self.ignore_index, dtype=torch.long, device=device)
        if inputs.get("shift_labels") is not None:
            return inputs["shift_labels"].to(device)
        if inputs.get("labels") is not None:
            return torch.cat([inputs["labels"].to(device)[:, self.shift :], fill], dim=1)
        if need:
            raise ValueError(
                f"lv.probe reads {need} only with the labels: pass labels= (or shift_labels=) "
                "to the model's forward"
            )
        if shape[-1] < 3:
            raise ValueError("lv.probe needs labels passed to the model when V < 3")
        return None

    def _check(self, tgt, shape, what: str, V: int) -> None:
        if tgt.shape != tuple(shape):
            raise ValueError(
                f"labels {tuple(tgt.shape)} do not match the {what} {tuple(shape)}; "
                "a model that keeps only some positions (logits_to_keep) cannot be probed"
            )
        valid = tgt != self.ignore_index
        if bool(((tgt < 0) | (tgt >= V))[valid].any()):
            raise ValueError(f"labels must lie in [0, {V}) or be {self.ignore_index}")

    def _align(self, tgt, w, res, inputs, inferred, g, via, dtype) -> MicroBatch:
        """Move ``w, res`` from the scoring positions to the label positions."""
        fill = torch.full_like(tgt[:, : self.shift], self.ignore_index)
        if inferred or inputs.get("labels") is None:
            labels = torch.cat([fill, tgt[:, : tgt.shape[1] - self.shift]], dim=1)
        else:
            labels = inputs["labels"].to(tgt.device)
        if self.shift:
            # the last position scores nothing: a gradient there shows up as its residual
            pad = torch.zeros_like(w[:, : self.shift])
            W = torch.cat([pad, w[:, : -self.shift]], dim=1)
            residual = torch.cat([res[:, -self.shift :], res[:, : -self.shift]], dim=1)
        else:
            W, residual = w, res
        return MicroBatch(
            labels=labels,
            W=W,
            residual=residual,
            grad=g if self.keep_grads else None,
            step=0,
            rank=0,
            world_size=1,
            labels_inferred=inferred,
            position_ids=inputs.get("position_ids"),
            tol=residual_tol(dtype),
            via=via,
        )

    def _measure(self, z, g, inputs) -> MicroBatch:
        tgt = self._targets(z.shape[:-1], z.device, inputs)
        if tgt is not None:
            self._check(tgt, z.shape[:-1], "logits", z.shape[-1])
        inferred = tgt is None
        tgt, w, res = _weights_by_chunks(z, g, tgt, self.ignore_index)
        return self._align(tgt, w, res, inputs, inferred, g, "logits", g.dtype)

    def _measure_log_probs(self, lp, g, inputs, scored) -> MicroBatch:
        # log_probs[b, t] scores the target at t (TRL: labels[:, 1:], so T - 1 columns)
        B, Tp = lp.shape[:2]
        T = inputs["labels"].shape[1] if inputs.get("labels") is not None else Tp
        if inputs.get("shift_labels") is None and inputs.get("labels") is not None:
            if Tp != T - self.shift:
                raise ValueError(
                    f"log_probs {tuple(lp.shape)} do not score labels {(B, T)} shifted by "
                    f"{self.shift}"
                )
            g = nn.functional.pad(g, (0, T - Tp))
            if scored is not None:
                scored = nn.functional.pad(scored, (0, T - Tp))
        tgt = self._targets((B, T), lp.device, inputs, need="log-probabilities")
        self._check(tgt, g.shape, "log-probabilities", 2**62)
        valid = tgt != self.ignore_index
        # an ignored position's log-prob is a constant (TRL: 0): its gradient trains nothing, so
        # W = 0 there. The one check left: the model's own mask of scored labels (TRL's
        # label_mask) agrees with the labels (residual 1 where it does not).
        w = torch.where(valid, -g.double(), 0.0)
        res = torch.zeros_like(w)
        if scored is not None and scored.shape == valid.shape:
            res = (scored.bool() != valid).double()
        return self._align(tgt, w, res, inputs, False, g, "log_probs", g.dtype)

    def _measure_hidden(self, h, g, inputs, head) -> MicroBatch:
        tgt = self._targets(h.shape[:-1], h.device, inputs, need="the hidden state's weights")
        V = head.weight.shape[0]
        self._check(tgt, h.shape[:-1], "hidden state", V)
        bias = getattr(head, "bias", None)
        w, res = recover_weights_hidden(
            h,
            head.weight,
            tgt,
            g,
            bias if isinstance(bias, torch.Tensor) else None,
            self.ignore_index,
        )
        # the head's matmul and the gradient's float32 rounding: ~1e-6 of ||g_h|| at D = 16
        tol = max(residual_tol(g.dtype), 1e-4)
        mb = self._align(tgt, w, res, inputs, False, g, "hidden", g.dtype)
        mb.tol = tol
        return mb
