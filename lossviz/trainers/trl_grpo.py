"""TRL's ``GRPOTrainer`` measured: each completion token's weight in the policy gradient.

TRL 1.16.0 never builds the ``[B, T, V]`` logits in GRPO: a fused LM head returns each completion
token's log-prob ``logp[b, t]`` directly. So the measured weight is the gradient of TRL's own loss
(``GRPOTrainer._compute_loss``) with respect to those log-probs, sign included; for cross-entropy-like
losses it is what :func:`lossviz.probe.recover_weights` reads from the logits' gradient, because
``d logp_y / d z = e_y - p`` (the chain rule gives ``W = -dL/d logp``)::

    meter = GRPOMeter()                       # a tiny Qwen2 from a config, an in-memory tokenizer
    out = meter.measure("dapo", [2, 5, 3], advantages=[1.0, -0.5, -0.5])
    out.grad                                  # [B, T] dL/d logp: -A_b * W[b, t] * gate

Needs the ``trainers`` extra. Nothing is generated: the completions, advantages, old log-probs and
token counts are given, as ``_generate_and_score_completions`` would hand them to the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..devices import torch_threads
from ..rl import response_mask

__all__ = ["GRPOMeter", "Measured", "TRL_LOSS_TYPES", "measured_table", "trl_version"]

# every loss_type of GRPOConfig in TRL 1.16.0, and GSPO (grpo with sequence-level ratios)
TRL_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo", "gspo")


def trl_version() -> str:
    """The installed TRL version (the statements this module backs name it)."""
    import trl

    return trl.__version__


@dataclass(frozen=True)
class Measured:
    """One call of TRL's loss: its value and ``dL/d logp`` per completion token (``[B, T]``, float64)."""

    loss: float
    grad: torch.Tensor
    mask: torch.Tensor
    log_ratio: torch.Tensor


class GRPOMeter:
    """A ``GRPOTrainer`` on a tiny model, whose ``_compute_loss`` is called on given completions."""

    def __init__(self, max_completion_length: int = 8, seed: int = 0) -> None:
        import tempfile
        import warnings

        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        from .quiet import quiet_args, quiet_trainer
        from .tiny import tiny_model, tiny_tokenizer

        self.tokenizer = tiny_tokenizer()
        self.max_completion_length = max_completion_length
        self._outdir = tempfile.TemporaryDirectory(prefix="lossviz-grpo-")  # removed with the meter
        with warnings.catch_warnings():  # deprecation notices of transformers/TRL options
            warnings.simplefilter("ignore")
            args = quiet_args(
                GRPOConfig,
                output_dir=self._outdir.name,  # the Trainer creates it; no training loop writes to it
                per_device_train_batch_size=2,
                num_generations=2,
                max_completion_length=max_completion_length,
            )
            self.trainer = quiet_trainer(
                GRPOTrainer,
                model=tiny_model(len(self.tokenizer), seed=seed),
                reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                args=args,
                train_dataset=Dataset.from_dict({"prompt": ["w1 w2"] * 2}),
                processing_class=self.tokenizer,
            )
        self._seed = seed

    def close(self) -> None:
        """Remove the trainer's (empty) output folder."""
        self._outdir.cleanup()

    def __enter__(self) -> GRPOMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def measure(
        self,
        loss_type: str,
        lengths: list[int],
        advantages: list[float] | torch.Tensor,
        *,
        log_ratio: torch.Tensor | None = None,
        level: str | None = None,
        ga_steps: int = 1,
        steps_per_generation: int | None = None,
        num_items_in_batch: float | None = None,
        epsilon: float = 0.2,
        epsilon_high: float | None = None,
        delta: float | None = None,
    ) -> Measured:
        """TRL's loss and ``dL/d logp`` for completions of ``lengths`` tokens (padded to ``max(lengths)``).

        ``log_ratio: [B, T]`` sets ``old_logp = logp - log_ratio`` (default on policy, ratio 1);
        ``level``: ``importance_sampling_level`` (``"sequence"`` for ``gspo``); ``ga_steps`` and
        ``steps_per_generation``: the accumulation the trainer divides by; ``num_items_in_batch``: the
        generation batch's token count on all processes (default this batch's).
        """
        tr = self.trainer
        name = "grpo" if loss_type == "gspo" else loss_type
        if name not in TRL_LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {TRL_LOSS_TYPES}, got {loss_type!r}")
        mask = response_mask(lengths).to(torch.long)
        B, T = mask.shape
        gen = torch.Generator().manual_seed(self._seed + 1)
        completion = torch.randint(4, len(self.tokenizer), (B, T), generator=gen) * mask
        prompt = torch.tensor([[self.tokenizer.convert_tokens_to_ids("w1")] * 2] * B)
        adv = torch.as_tensor(advantages, dtype=torch.float32)
        inputs = {
            "prompt_ids": prompt,
            "prompt_mask": torch.ones_like(prompt),
            "completion_ids": completion,
            "completion_mask": mask,
            "advantages": adv,
            "num_items_in_batch": torch.tensor(
                float(mask.sum()) if num_items_in_batch is None else float(num_items_in_batch)
            ),
        }
        tr.loss_type = name
        tr.importance_sampling_level = level or ("sequence" if loss_type == "gspo" else "token")
        tr.epsilon_low = epsilon
        tr.epsilon_high = epsilon if epsilon_high is None else epsilon_high
        tr.args.delta = delta
        tr.current_gradient_accumulation_steps = ga_steps
        tr.args.steps_per_generation = (
            ga_steps if steps_per_generation is None else steps_per_generation
        )
        seen: dict[str, torch.Tensor] = {}
        original = tr._get_per_token_logps_and_entropies

        def keep_logps(*args, **kwargs):
            logps, entropies, aux = original(*args, **kwargs)
            logps.retain_grad()  # the leaf of the loss the measurement reads
            seen["logps"] = logps
            if log_ratio is not None:
                inputs["old_per_token_logps"] = logps.detach() - log_ratio.to(logps.dtype)
            return logps, entropies, aux

        tr._get_per_token_logps_and_entropies = keep_logps
        tr.model.train()
        try:
            with torch_threads(1):
                loss = tr._compute_loss(tr.model, inputs)
                loss.backward()
        finally:
            del tr._get_per_token_logps_and_entropies  # back to the class's method
            tr.model.zero_grad(set_to_none=True)
        lr = torch.zeros(B, T) if log_ratio is None else log_ratio
        return Measured(
            float(loss.detach()),
            seen["logps"].grad.to(torch.float64),
            mask.to(torch.float64),
            lr.to(torch.float64),
        )


def measured_table(
    meter: GRPOMeter,
    lengths: list[int],
    advantages: torch.Tensor,
    log_ratio: torch.Tensor,
) -> list[dict]:
    """One row per TRL loss type: its W and gate formulas, lossviz reduction, and the largest
    ``|measured - predicted|`` of ``dL/d logp`` on policy and at ``log_ratio`` (``[B, T]``)."""
    from .. import rl, rl_ratio

    rows = []
    adv = torch.as_tensor(advantages, dtype=torch.float64)
    for name in TRL_LOSS_TYPES:
        mode = rl.resolve_mode(f"trl:{name}")
        errors = []
        for lr in (None, log_ratio):
            out = meter.measure(name, lengths, adv, log_ratio=lr)
            counts = {"max_length": meter.max_completion_length}
            pred = rl_ratio.policy_gradient(out.mask, adv, mode, out.log_ratio, counts=counts)
            errors.append(float((out.grad - pred).abs().max()))
        rows.append(
            {
                "loss_type": name,
                "setting": mode.setting or f"loss_type={name}",
                "W": mode.weight,
                "gate": rl_ratio.GATE_FORMULAS[name],
                "reduction": mode.reduction,
                "on_policy_error": errors[0],
                "off_policy_error": errors[1],
            }
        )
    return rows
