"""lossviz's models of one trainer step, compared with what :mod:`lossviz.trainers.hf_trainer` measured.

A measured step is a list of recorded rows (labels, ``W``, ``position_ids``); :func:`assemble` maps
each row back to the sample it holds, which gives the dealing ``plan[r][k]`` the trainer really
used; :func:`predictions` computes every model lossviz has of that dealing
(:func:`lossviz.accumulation.plan_weights`), and :func:`verdict` says in words which one the
trainer follows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["MODELS", "assemble", "compare_case", "predict", "predictions", "samples", "verdict"]

VOCAB = 64


def samples(lengths: Sequence[int], seed: int) -> list[dict]:
    """Random token samples: sample b has ``lengths[b] + 1`` ids and ``labels = input_ids``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(0, VOCAB, (n + 1,), generator=gen).tolist()
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def _pieces(labels: list[int], position_ids: list[int] | None) -> list[tuple[int, int]]:
    """``(start, end)`` of each sample in a row: split where position_ids restart, drop padding."""
    end = len(labels)
    while end > 0 and labels[end - 1] == -100:
        end -= 1
    if position_ids is None:
        return [(0, end)]
    starts = [t for t in range(end) if position_ids[t] == 0] or [0]
    return list(zip(starts, starts[1:] + [end], strict=True))


def assemble(result: dict, lengths: Sequence[int], seed: int) -> dict:
    """Map each recorded row back to its sample: the plan, per-token W, and W off the mask."""
    data = samples(lengths, seed)
    R = max(mb["rank"] for mb in result["micro_batches"]) + 1
    plan: list[list[list[int]]] = [[] for _ in range(R)]
    tokens: list[list[float] | None] = [None] * len(lengths)
    off = 0.0
    for mb in result["micro_batches"]:
        if mb["step"] != 0:
            raise RuntimeError(f"the run took more than one optimizer step (step {mb['step']})")
        rows = []
        for b, labels in enumerate(mb["labels"]):
            W = mb["W"][b]
            pos = None if mb["position_ids"] is None else mb["position_ids"][b]
            claimed = set()
            for start, end in _pieces(labels, pos):
                ids = labels[start + 1 : end]
                i = next(
                    i
                    for i, s in enumerate(data)
                    if tokens[i] is None and s["labels"][1:] == ids and i not in rows
                )
                tokens[i] = W[start + 1 : end]
                rows.append(i)
                claimed.update(range(start + 1, end))
            off = max([off] + [abs(w) for t, w in enumerate(W) if t not in claimed])
        plan[mb["rank"]].append(rows)
    if any(t is None for t in tokens):
        missing = [i for i, t in enumerate(tokens) if t is None]
        raise RuntimeError(f"samples {missing} were never trained in the measured step")
    return {"plan": plan, "tokens": tokens, "off_mask_max": off}


def predict(
    lengths: Sequence[int], plan: list[list[list[int]]], normalize: str, *, extra_per_row: int = 0
) -> list[list[float]]:
    """lossviz's per-token weights of each sample for a dealing ``plan`` and a normalization.

    ``extra_per_row=1`` models the count of transformers < 5.11 (fixed by pull request 46204): it counted
    ``labels != -100`` before the shift, so each row's first label, which no loss scores, was
    counted too: the mask gets one more (untrained) token per sample, read off and dropped.
    """
    from .accumulation import plan_weights
    from .batching import mask_from_lengths

    mask = mask_from_lengths([n + extra_per_row for n in lengths]).double()
    W = plan_weights(mask, plan, normalize=normalize)
    return [W[b, :n].tolist() for b, n in enumerate(lengths)]


def predictions(lengths: Sequence[int], plan: list[list[list[int]]]) -> dict:
    """Every model lossviz has of a Trainer step: the five normalizations and the two over-counts."""
    from .accumulation import TRAINER_NORMALIZATIONS

    out = {n: predict(lengths, plan, n) for n in TRAINER_NORMALIZATIONS}
    for n in ("global", "local"):
        out[f"{n}_overcount"] = predict(lengths, plan, n, extra_per_row=1)
    return out


def compare_case(measured: list[list[float]], predicted: list[list[float]]) -> dict:
    """Max |measured - predicted| (absolute and relative to max |W|) and per-sample shares."""
    flat_m = torch.tensor([w for row in measured for w in row], dtype=torch.float64)
    flat_p = torch.tensor([w for row in predicted for w in row], dtype=torch.float64)
    diff = float((flat_m - flat_p).abs().max())
    return {
        "max_abs_diff": diff,
        "max_rel_diff": diff / float(flat_p.abs().max()),
        "measured_share": [sum(row) for row in measured],
        "predicted_share": [sum(row) for row in predicted],
    }


MODELS = {
    "global": "the global token mean: every trained token weighs 1/N",
    "local": "each rank's own token mean, averaged over the ranks",
    "naive": "the mean of micro-batch means",
    "unscaled": "each micro-batch's own mean, not divided by GA (total weight GA)",
    "sum": "the summed loss divided by GA",
    "global_overcount": "the global token mean with one extra token counted per row",
    "local_overcount": "each rank's token mean with one extra token counted per row",
}


def verdict(
    result: dict, *, who: str | None = None, models: dict | None = None, on_match: str = ""
) -> str:
    """One sentence: does the measured step match lossviz's expected model, and how far off is it.

    ``who`` names the run (default: the result's own ``who``, else its transformers version and
    case); ``models`` the descriptions of the models (default :data:`MODELS`); ``on_match`` is
    added to the sentence of a match.
    """
    exp, d = result["expected"], result["diff"]
    models = MODELS if models is None else models
    who = who or result.get("who")  # a run lossviz did not start (lossviz probe-merge) names itself
    if who is None:
        who = f"transformers {result['transformers']} ({result['case']}"
        who += f", {result['world_size']} ranks)" if result["world_size"] > 1 else ")"
    if result["max_residual"] >= 1e-5:
        return (
            f"{who}: not plain weighted cross-entropy (residual {result['max_residual']:.1e}); "
            "W is not a weight here"
        )
    if exp in result["matches"]:
        return f"{who} matches lossviz's `{exp}` model within 1e-6: {models[exp]}{on_match}."
    found = ", ".join(f"`{m}` ({models[m]})" for m in result["matches"]) or "none of its models"
    return (
        f"{who} differs from lossviz's `{exp}` model by up to {d[exp]['max_rel_diff']:.0%} "
        f"of the largest weight; it matches {found}."
    )
