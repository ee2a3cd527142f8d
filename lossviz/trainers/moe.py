"""A mixture-of-experts model in the transformers ``Trainer``: the router aux loss's effective coefficient.

A Mixtral-style model returns ``loss = CE + c * aux`` (``c = router_aux_loss_coef``, ``aux`` the
micro-batch's load-balancing loss). The ``Trainer`` (transformers 5.24) treats that sum as one
number: the model divides the cross-entropy by the token count of the whole step
(``num_items_in_batch``), so the ``Trainer`` does not divide the returned loss by the GA steps ``K``,
and with ``average_tokens_across_devices`` it multiplies the returned loss by the ``R`` ranks
before DDP averages the gradients. The cross-entropy comes out as the step's token mean; the aux
term of every micro-batch keeps its full ``c`` (transformers issue 48690):

    d step / d router = c' * sum over the K * R micro-batches of d aux / d router

:func:`measure_aux` measures ``c'``: one real ``Trainer`` step with ``c`` and one with ``c = 0``
(the same model, data and dealing), the router weights' gradient the optimizer receives in each;
their difference, projected on ``sum d aux / d router`` recomputed on the recorded micro-batches,
is ``c'`` (its ``residual`` says how well one coefficient explains the difference). A single batch
of the same samples weighs the aux once, ``c``: on the mean of the micro-batches' aux, the
``Trainer`` puts ``c' * K * R``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["MOE_SETUP", "aux_coefficient", "measure_aux", "moe_rows"]

# batch 2 x GA 2 per rank; 2 ranks take 8 samples
MOE_SETUP = {"lengths": [3, 7, 20, 5, 12, 4, 9, 6], "per_device_batch_size": 2, "ga_steps": 2}


def aux_coefficient(with_aux: Sequence[float], without: Sequence[float], aux_grad) -> dict:
    """``{"coef", "residual"}``: the ``c'`` with ``with_aux - without = c' * aux_grad`` (least squares).

    All three are the router weights' gradient flattened (``[P]``); ``residual`` is
    ``||diff - c' aux_grad|| / ||diff||``.
    """
    a = torch.as_tensor(aux_grad, dtype=torch.float64)
    d = torch.as_tensor(with_aux, dtype=torch.float64) - torch.as_tensor(
        without, dtype=torch.float64
    )
    if a.shape != d.shape or a.ndim != 1:
        raise ValueError(
            f"the three gradients must be flat and equal in shape, got {a.shape}, {d.shape}"
        )
    if float(a.norm()) == 0.0:
        raise ValueError("the aux loss has no gradient on the router: nothing to measure")
    coef = float(d @ a / (a @ a))
    residual = float((d - coef * a).norm() / d.norm()) if float(d.norm()) > 0 else 0.0
    return {"coef": coef, "residual": residual}


def measure_aux(
    *,
    coef: float = 0.5,
    world_size: int = 1,
    average_tokens_across_devices: Sequence[bool | None] = (None,),
    seed: int = 0,
    timeout: float = 180.0,
    pythonpath: str | None = None,
) -> list[dict]:
    """The aux term's effective coefficient in one ``Trainer`` step of the tiny Mixtral (:data:`MOE_SETUP`).

    One result per ``average_tokens_across_devices`` value (``None``: the version's default), all
    from one set of ``world_size`` processes: ``{"coef": c, "measured": c', "residual",
    "per_coef": c'/c, "on_mean": c' K R / c, "ce": the cross-entropy's matching weightings,
    "ce_expected", "average_tokens_across_devices", "world_size", "ga_steps", "transformers"}``.
    ``pythonpath``: run the processes on another transformers (:func:`lossviz.trainers.versions.install`).
    """
    import sys

    from .hf_trainer import measure_runs

    if not coef > 0:
        raise ValueError(f"coef must be > 0 (it is compared with coef 0), got {coef!r}")
    setup = dict(MOE_SETUP)
    lengths = setup.pop("lengths")[
        : setup["per_device_batch_size"] * setup["ga_steps"] * world_size
    ]
    if len(lengths) < setup["per_device_batch_size"] * setup["ga_steps"] * world_size:
        raise ValueError(f"world_size must be 1 or 2 for this setup, got {world_size}")
    runs = []
    for atad in average_tokens_across_devices:
        for c in (coef, 0.0):
            runs.append(
                {"case": "ga", "model": "moe", "aux_coef": c, "average_tokens_across_devices": atad}
            )
    res = measure_runs(
        lengths,
        runs,
        world_size=world_size,
        seed=seed,
        timeout=timeout,
        pythonpath=pythonpath,
        python=sys.executable if pythonpath else None,
        **setup,
    )
    out = []
    for i in range(0, len(res), 2):
        on, off = res[i], res[i + 1]
        got = aux_coefficient(on["router_grad"], off["router_grad"], on["aux_grad"])
        K, R = on["ga_steps"], on["world_size"]
        out.append(
            {
                "coef": coef,
                "measured": got["coef"],
                "residual": got["residual"],
                "per_coef": got["coef"] / coef,
                "on_mean": got["coef"] * K * R / coef,
                "ce": on["matches"],
                "ce_expected": on["expected"],
                "ce_max_residual": on["max_residual"],
                "average_tokens_across_devices": on["average_tokens_across_devices"],
                "world_size": R,
                "ga_steps": K,
                "transformers": on["transformers"],
            }
        )
    return out


def moe_rows(
    world_size: int = 2,
    timeout: float = 180.0,
    measured: tuple[list[dict], list[dict]] | None = None,
) -> list[dict]:
    """The measured rows of the cross-framework table for the MoE aux loss in the ``Trainer``.

    Runs :func:`measure_aux` on 1 rank and on ``world_size`` gloo ranks with and without
    ``average_tokens_across_devices`` (or reads ``measured = (one_rank, several_ranks)``, the
    results of those calls); each row: ``framework, version, setting, per_token_weight,
    last_window, data_parallel, aux_loss, measured``.
    """
    if measured is not None:
        one, many = measured
    else:
        one = measure_aux(world_size=1)
        many = (
            measure_aux(
                world_size=world_size, average_tokens_across_devices=(True, False), timeout=timeout
            )
            if world_size > 1
            else []
        )
    rows = []
    for m in one + many:
        K, R = m["ga_steps"], m["world_size"]
        ce = "the step's token mean" if "global" in m["ce"] else "each rank's token mean"
        atad = m["average_tokens_across_devices"]
        rows.append(
            {
                "framework": "transformers Trainer",
                "version": m["transformers"],
                "setting": f"MoE (Mixtral), output_router_logits, GA {K}, {R} rank"
                + ("s" if R > 1 else "")
                + (f", average_tokens_across_devices={atad}" if R > 1 else ""),
                "per_token_weight": ce + " (num_items_in_batch reaches the model)",
                "last_window": "cross-entropy: the window's token mean; aux: c per micro-batch",
                "data_parallel": (
                    "returned loss x R, gradients averaged: CE global, aux summed over ranks"
                    if atad
                    else "gradients averaged over ranks"
                ),
                "aux_loss": (
                    f"c' = {m['per_coef']:.3g} c per micro-batch: {m['on_mean']:.3g} c on the mean "
                    f"aux of the {K * R} micro-batches (a single batch: 1 c)"
                ),
                "measured": m,
            }
        )
    return rows
