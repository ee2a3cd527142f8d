"""Measure the weight the real transformers Trainer gives each sample, beside lossviz's prediction.

Runs one optimizer step of the installed transformers Trainer on a tiny Llama built from a config
(nothing is downloaded), with lossviz's probe reading every token's weight from the gradient of
its logits, in real processes when --world-size > 1 (gloo on 127.0.0.1). Prints each sample's
measured weight (its share of the step), lossviz's predicted weight, the full-batch token mean,
the worst ratio and a verdict.
Example: lossviz probe --trainer transformers --lengths 12,40,7,300 --per-device-batch-size 1
         --ga-steps 4 --world-size 2
"""

from __future__ import annotations

import argparse
import json
import sys

from .audit import add_step_options

__all__ = ["add_arguments", "run", "report"]

_ATAD = {"default": None, "true": True, "false": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lossviz probe``."""
    from ..trainers.hf_trainer import CASES

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--trainer",
        choices=["transformers"],
        default="transformers",
        help="the trainer to measure: transformers (the installed Trainer); default transformers",
    )
    add_step_options(
        parser,
        batch_flag="--per-device-batch-size",
        lengths_help="trained tokens of each sample, comma-separated, in data-loader order, e.g. "
        "12,40,7,300; one step takes per-device-batch-size x ga-steps x world-size samples, and a "
        "shorter list whose length divides that is repeated to fill the step",
        world_help="data-parallel processes to start (gloo on 127.0.0.1, 1 to 8); default 1",
    )
    parser.add_argument(
        "--case",
        choices=CASES,
        default="ga",
        help="ga: a transformers model (num_items_in_batch); naive: a model whose forward takes "
        "no **kwargs; compute_loss: an override that returns model(**inputs).loss; packed: "
        "DataCollatorWithFlattening (position_ids); default ga",
    )
    parser.add_argument(
        "--average-tokens-across-devices",
        choices=list(_ATAD),
        default="default",
        help="TrainingArguments.average_tokens_across_devices: true, false, or the installed "
        "version's default; default default",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random tokens; default 0")
    parser.add_argument(
        "--json", action="store_true", help="print the whole measurement as JSON instead"
    )


def _fill(lengths: list[int], need: int) -> list[int]:
    if len(lengths) == need:
        return lengths
    if len(lengths) < need and need % len(lengths) == 0:
        return lengths * (need // len(lengths))
    raise ValueError(
        f"one optimizer step takes per-device-batch-size x ga-steps x world-size = {need} "
        f"samples, but --lengths gave {len(lengths)}; give {need} lengths (or a list whose length "
        f"divides {need}, which is repeated)"
    )


def report(result: dict) -> list[str]:
    """The printed table: per-sample measured vs predicted weights, the worst ratio, the verdict."""
    from ..measured_step import MODELS, verdict

    exp = result["expected"]
    d = result["diff"][exp]
    full = result["diff"]["global"]["predicted_share"]
    where = {
        i: (r, k) for r, rank in enumerate(result["plan"]) for k, mb in enumerate(rank) for i in mb
    }
    lines = [
        result.get("header")
        or f"transformers {result['transformers']} Trainer, one optimizer step: "
        f"{len(result['lengths'])} samples = per-device-batch-size "
        f"{result['per_device_batch_size']} x ga-steps {result['ga_steps']} x world-size "
        f"{result['world_size']}; case {result['case']}, average_tokens_across_devices="
        f"{result['average_tokens_across_devices']}",
        f"Weight of each sample in the step (sum over its tokens); predicted: lossviz's `{exp}` "
        f"model ({MODELS[exp]})",
        f"{'sample':>6} {'tokens':>6} {'rank':>4} {'mb':>3} {'measured':>9} {'predicted':>9} "
        f"{'full batch':>10} {'measured/full':>13}",
    ]
    ratios = []
    for i, n in enumerate(result["lengths"]):
        r, k = where[i]
        m, p = d["measured_share"][i], d["predicted_share"][i]
        ratios.append(m / full[i])
        lines.append(
            f"{i:>6} {n:>6} {r:>4} {k:>3} {m:>9.5f} {p:>9.5f} {full[i]:>10.5f} {ratios[-1]:>13.3f}"
        )
    lines += [
        f"max |measured - predicted| per token: {d['max_rel_diff']:.1e} of the largest weight "
        "(float32 recovery: below 1e-6 means equal)",
        f"Worst ratio to the full-batch token mean: {max(ratios):.3f}x (up), {min(ratios):.3f}x "
        "(down)",
        f"Gradient form: residual {result['max_residual']:.1e} (below 1e-5: plain weighted "
        "cross-entropy)",
        "Verdict: " + verdict(result),
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    """Measure and print; 0 on success, 2 (with a message on stderr) on a bad setup or failure."""
    from tqdm.auto import tqdm

    from ..trainers import missing

    if missing("transformers", "accelerate"):
        print(
            "lossviz probe: error: --trainer transformers needs transformers and accelerate: "
            "pip install 'lossviz[trainers]'",
            file=sys.stderr,
        )
        return 2
    from ..distributed import DistributedRunError
    from ..trainers.hf_trainer import measure

    need = args.per_device_batch_size * args.ga_steps * args.world_size
    try:
        if args.world_size > 8:
            raise ValueError(
                f"--world-size must be at most 8 local processes, got {args.world_size}"
            )
        lengths = _fill(args.lengths, need)
        if lengths is not args.lengths and not args.json:
            print(f"--lengths repeated to fill the step's {need} samples: {lengths}")
        with tqdm(
            total=1, desc=f"Trainer step on {args.world_size} process(es)", file=sys.stderr
        ) as bar:
            result = measure(
                lengths,
                per_device_batch_size=args.per_device_batch_size,
                ga_steps=args.ga_steps,
                world_size=args.world_size,
                case=args.case,
                average_tokens_across_devices=_ATAD[args.average_tokens_across_devices],
                seed=args.seed,
            )
            bar.update(1)
    except (ValueError, DistributedRunError) as err:
        print(f"lossviz probe: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("\n".join(report(result)))
    return 0
