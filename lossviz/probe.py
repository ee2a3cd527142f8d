"""Measure the weight a real training step gives each token, from the gradient of its logits.

For cross-entropy at a position with weight ``w``, the loss's gradient with respect to that
position's logits ``z`` is ``g = w * (softmax(z) - onehot(y))``. So one backward pass through any
training step gives every token's effective weight:

    w = <g, p - e_y> / ||p - e_y||^2,     residual = ||g - w (p - e_y)|| / ||g||

A residual at float rounding (``< 1e-4`` in float32) says the loss *is* weighted cross-entropy at
that position; label smoothing, a z-loss or a KL term leave a larger residual, and the probe reports
it instead of a silently wrong ``w``.

    with lv.probe(model) as rec:      # hooks the model's output logits and their gradient
        trainer.train()               # or your own loop: forward, backward, optimizer.step()
    rec.W(step=0)                     # [B, T] per-token weights, aligned to the labels

The loss that predicts ``labels[b, t]`` is reported at ``[b, t]``: a causal LM scores
``labels[b, t + 1]`` with the logits at ``t`` (transformers shifts inside its loss), so the probe
shifts back; ``W[:, 0]`` is 0. Under DDP each rank records the weight of its own loss; DDP then
averages gradients over the ``R`` ranks, so the step's weight is that ``W / R``
(:attr:`MicroBatch.step_W`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "RESIDUAL_TOL",
    "MicroBatch",
    "ProbeRecord",
    "infer_labels",
    "probe",
    "recover_weights",
    "residual_tol",
]

# Plain CE with float32 logits and gradients leaves a relative residual of about 4e-8 (measured on
# vocabularies of 64 to 32000: one float32 rounding of g); label smoothing 0.1 leaves ~1e-1 and a
# z-loss of 1e-4 ~1.5e-4. A bf16/fp16 gradient is itself rounded to ~eps, so its bound is 4 eps.
RESIDUAL_TOL = 1e-5


def residual_tol(dtype: torch.dtype) -> float:
    """The residual below which a gradient of this dtype counts as plain weighted CE."""
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return max(RESIDUAL_TOL, 4 * eps) if eps > torch.finfo(torch.float32).eps else RESIDUAL_TOL


def recover_weights(
    logits: torch.Tensor, labels: torch.Tensor, grad: torch.Tensor, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, residual)``: each position's CE weight from its logits' gradient, in float64.

    ``logits, grad: [..., V]``, ``labels: [...]`` (the target scored by those logits, already
    shifted). ``W = <g, p - e_y> / ||p - e_y||^2`` with ``p = softmax(logits)``;
    ``residual = ||g - W (p - e_y)|| / ||g||`` (0 where ``g == 0``). An ignored position has
    ``W = 0`` and residual 1 if its gradient is not zero (the loss trained a token it should not).
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
    V = logits.shape[-1]
    valid = labels != ignore_index
    if bool(((labels < 0) | (labels >= V))[valid].any()):
        raise ValueError(
            f"labels must lie in [0, {V}) or equal ignore_index={ignore_index}; got "
            f"{labels[valid].min().item()}..{labels[valid].max().item()}"
        )
    _, W, residual = _weights_by_chunks(logits, grad, labels, ignore_index)
    return W, residual


def _softmax64(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.detach().double(), dim=-1)


def _recover(p, g, labels, valid) -> tuple[torch.Tensor, torch.Tensor]:
    # d = p - e_y is never built: <g, d> = <g, p> - g_y and ||d||^2 = ||p||^2 - 2 p_y + 1, and the
    # one [..., V] temporary is updated in place (the probe's cost grows with B x T x V)
    y = torch.where(valid, labels, 0).unsqueeze(-1)
    on = valid.double()
    g_y, p_y = g.gather(-1, y).squeeze(-1) * on, p.gather(-1, y).squeeze(-1) * on
    gd = torch.linalg.vecdot(g, p) - g_y
    dd = torch.linalg.vecdot(p, p) - 2 * p_y + on
    fit = valid & (dd > 0)
    W = torch.where(fit, gd / torch.where(fit, dd, 1.0), 0.0)
    rest = torch.addcmul(g, W.unsqueeze(-1), p, value=-1.0)  # g - W p, then + W e_y
    rest = rest.scatter_add_(-1, y, (W * on).unsqueeze(-1)).norm(dim=-1)
    gn = g.norm(dim=-1)
    residual = torch.where(gn > 0, rest / torch.where(gn > 0, gn, 1.0), 0.0)
    return W, residual


def infer_labels(
    logits: torch.Tensor, grad: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """``labels: [...]``: the target each position's gradient trained, read from ``g / p``.

    For CE, ``r_j = g_j / p_j = w`` for every class but the label, where it is ``w (1 - 1/p_y)``:
    the label is the class farthest from the mean of ``r`` (the mean, not a median: no sort over
    V; the label's distance is V - 1 >= 2 times any other's). A zero gradient gives
    ``ignore_index``. ``logits, grad: [..., V]`` with ``V >= 3``.
    """
    if logits.shape[-1] < 3:
        raise ValueError("infer_labels needs a vocabulary of at least 3 classes; pass labels")
    return _infer(_softmax64(logits), grad.detach().double(), ignore_index)


def _weights_by_chunks(
    z: torch.Tensor, g: torch.Tensor, tgt: torch.Tensor | None, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(targets, W, residual)`` over ``[..., V]`` in chunks of positions (inferring targets if None).

    A chunk holds about 2**19 float64 values per temporary (4 MiB), so the probe's passes over the
    vocabulary stay in the CPU cache: 5-6x faster than one pass over a [4, 121, 4096] batch, and
    bit-identical (every position is computed alone).
    """
    V = z.shape[-1]
    zf, gf = z.reshape(-1, V), g.reshape(-1, V)
    tf = None if tgt is None else tgt.reshape(-1)
    rows = max(1, 2**19 // V)
    parts = []
    for i in range(0, zf.shape[0], rows):
        p, g64 = _softmax64(zf[i : i + rows]), gf[i : i + rows].double()
        t = _infer(p, g64, ignore_index) if tf is None else tf[i : i + rows]
        parts.append((t, *_recover(p, g64, t, t != ignore_index)))
    shape = z.shape[:-1]
    return tuple(torch.cat([part[k] for part in parts]).reshape(shape) for k in range(3))


def _infer(p: torch.Tensor, g: torch.Tensor, ignore_index: int) -> torch.Tensor:
    r = g / p
    y = r.sub_(r.mean(dim=-1, keepdim=True)).abs_().argmax(dim=-1)
    return torch.where(g.abs().amax(dim=-1) == 0, ignore_index, y)


@dataclass
class MicroBatch:
    """One forward/backward the probe saw. ``W, residual, labels: [B, T]`` aligned to the labels.

    ``grad: [B, T, V]`` is the logits' gradient at the logits' own positions (unshifted);
    ``step`` counts the optimizer steps taken before this micro-batch; ``rank`` is the process's
    rank (0 without torch.distributed), ``world_size`` the group's size.
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

    @property
    def step_W(self) -> torch.Tensor:
        """``W / world_size``: this rank's weights after DDP's mean over ranks."""
        return self.W / self.world_size

    @property
    def max_residual(self) -> float:
        """The largest relative residual (0.0 for an all-zero gradient)."""
        return float(self.residual.max()) if self.residual.numel() else 0.0


@dataclass
class ProbeRecord:
    """What :func:`probe` recorded: the micro-batches in forward order and the optimizer steps."""

    slots: list[MicroBatch | None] = field(default_factory=list)  # None: no gradient (yet)
    optimizer_steps: int = 0

    @property
    def micro_batches(self) -> list[MicroBatch]:
        """Every micro-batch whose logits received a gradient, in forward order."""
        return [mb for mb in self.slots if mb is not None]

    @property
    def unmatched(self) -> int:
        """Forwards whose logits got no gradient (evaluation, or a loss never backpropagated)."""
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
        by default :func:`residual_tol` of each gradient's dtype)."""
        return all(mb.max_residual < (tol or mb.tol) for mb in self.micro_batches)


def _logits(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits")
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"lv.probe could not find logits in the model's output ({type(output).__name__}); "
            "pass logits_of=lambda output: <the [B, T, V] logits tensor>"
        )
    return logits


def _dist_rank() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class probe:  # noqa: N801 - used as ``with lv.probe(model) as rec``
    """``with lv.probe(model) as rec``: record every micro-batch's per-token weight ``W: [B, T]``.

    Hooks ``model``'s forward (its ``labels``/``shift_labels``/``position_ids`` keyword arguments
    and its output logits) and the logits' gradient; ``logits_of(output) -> [B, T, V]`` picks the
    logits from another output layout. Labels not passed to the model are read from the gradient
    (:func:`infer_labels`). ``shift=1``: the logits at ``t`` score the label at ``t + 1``.
    ``keep_grads=False`` drops the ``[B, T, V]`` gradients once ``W`` is computed. Training is
    unchanged: the hooks read tensors and return nothing.
    """

    def __init__(
        self,
        model: nn.Module,
        logits_of=None,
        *,
        shift: int = 1,
        ignore_index: int = -100,
        keep_grads: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"lv.probe needs an nn.Module, got {type(model).__name__}")
        if logits_of is not None and not callable(logits_of):
            raise TypeError("logits_of must be a callable output -> logits tensor [B, T, V]")
        if shift not in (0, 1):
            raise ValueError(f"shift must be 0 (labels aligned) or 1 (causal LM), got {shift!r}")
        self.model = model
        self.logits_of = logits_of or _logits
        self.shift = shift
        self.ignore_index = ignore_index
        self.keep_grads = keep_grads
        self.record = ProbeRecord()
        self._handles: list = []
        self._inputs: dict = {}

    def __enter__(self) -> ProbeRecord:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._handles = [
            self.model.register_forward_pre_hook(self._pre_hook, with_kwargs=True),
            self.model.register_forward_hook(self._hook),
            register_optimizer_step_post_hook(self._on_step),
        ]
        return self.record

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _on_step(self, optimizer, args, kwargs) -> None:
        self.record.optimizer_steps += 1

    def _pre_hook(self, module, args, kwargs) -> None:
        self._inputs = {
            k: kwargs[k].detach() if isinstance(kwargs.get(k), torch.Tensor) else None
            for k in ("labels", "shift_labels", "position_ids")
        }

    def _hook(self, module, args, output) -> None:
        logits = self.logits_of(output)
        if not (torch.is_grad_enabled() and logits.requires_grad):
            return
        inputs, self._inputs = self._inputs, {}
        step, (rank, world) = self.record.optimizer_steps, _dist_rank()
        z = logits.detach()
        slot = len(self.record.slots)
        self.record.slots.append(None)  # kept in forward order, filled when the gradient arrives

        def on_grad(g: torch.Tensor) -> None:
            self.record.slots[slot] = self._measure(z, g.detach(), inputs, step, rank, world)

        logits.register_hook(on_grad)

    def _targets(self, z, inputs) -> torch.Tensor | None:
        """Targets scored by each logits position ``[B, T]``; None: read them from the gradient."""
        B = z.shape[0]
        fill = torch.full((B, self.shift), self.ignore_index, dtype=torch.long, device=z.device)
        if inputs.get("shift_labels") is not None:
            return inputs["shift_labels"].to(z.device)
        if inputs.get("labels") is not None:
            return torch.cat([inputs["labels"].to(z.device)[:, self.shift :], fill], dim=1)
        if z.shape[-1] < 3:
            raise ValueError("lv.probe needs labels passed to the model when V < 3")
        return None

    def _measure(self, z, g, inputs, step, rank, world) -> MicroBatch:
        tgt = self._targets(z, inputs)
        if tgt is not None and tgt.shape != z.shape[:-1]:
            raise ValueError(
                f"labels {tuple(tgt.shape)} do not match the logits {tuple(z.shape)}; "
                "a model that keeps only some logits (logits_to_keep) cannot be probed"
            )
        if tgt is not None:
            valid = tgt != self.ignore_index
            if bool(((tgt < 0) | (tgt >= z.shape[-1]))[valid].any()):
                raise ValueError(f"labels must lie in [0, {z.shape[-1]}) or be {self.ignore_index}")
        inferred = tgt is None
        tgt, w, res = _weights_by_chunks(z, g, tgt, self.ignore_index)
        fill = torch.full_like(tgt[:, : self.shift], self.ignore_index)
        if inferred or inputs.get("labels") is None:
            labels = torch.cat([fill, tgt[:, : tgt.shape[1] - self.shift]], dim=1)
        else:
            labels = inputs["labels"].to(z.device)
        if self.shift:
            # the last logits position scores nothing: a gradient there shows up as its residual
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
            step=step,
            rank=rank,
            world_size=world,
            labels_inferred=inferred,
            position_ids=inputs.get("position_ids"),
            tol=residual_tol(g.dtype),
        )
