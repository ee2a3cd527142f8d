"""Measure the weight the real transformers Trainer gives each sample, beside lossviz's prediction.

Runs one optimizer step of the installed transformers Trainer on a tiny model built from a config
(--model: a Llama, a Qwen2.5-VL vision-language model or a Mixtral mixture of experts; nothing is
downloaded), with lossviz's probe reading every token's weight from the gradient of
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

from ..step_shape import fill_step, locate, step_samples, trainer_dealing
from .audit import add_step_options

__all__ = ["add_arguments", "run", "report"]

_ATAD = {"default": None, "true": True, "false": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lossviz probe``."""
    from ..trainers.hf_trainer import CASES, MODELS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--trainer",
        choices=["transformers", "lightning", "accelerate"],
        default="transformers",
        help="the trainer to measure: transformers (the installed Trainer), lightning (PyTorch "
        "Lightning's automatic optimization), accelerate (a loop of --loop); default transformers",
    )
    parser.add_argument(
        "--loop",
        choices=["accumulate", "recipe", "recipe_shifted", "automatic", "token_count"],
        default=None,
        help="with --trainer accelerate: accumulate (accelerator.accumulate + backward; the "
        "default), recipe (the documented token-count recipe), recipe_shifted (the recipe counting "
        "labels[..., 1:]); with --trainer lightning: automatic (training_step returns the model's "
        "loss; the default), token_count (it returns the summed loss x K x R / N)",
    )
    add_step_options(
        parser,
        lengths_help="trained tokens of each sample, comma-separated, in data-loader order, e.g. "
        "12,40,7,300; one step takes per-device-batch-size x ga-steps x world-size samples, and a "
        "shorter list is repeated in order to fill the step",
        world_help="data-parallel processes to start (gloo on 127.0.0.1, 1 to 8); default 1",
    )
    parser.add_argument(
        "--model",
        choices=[m for m in MODELS if m != "vlm_qwen2"],
        default="llama",
        help="the tiny model: llama (a causal LM), vlm (Qwen2.5-VL, whose class declares "
        "accepts_loss_kwargs = False; text-only batches), moe (Mixtral with its router aux "
        "loss); default llama",
    )
    parser.add_argument(
        "--case",
        choices=CASES,
        default="ga",
        help="ga: the model as shipped; naive: a model whose forward takes no **kwargs; "
        "compute_loss: an override that returns model(**inputs).loss; packed: "
        "DataCollatorWithFlattening (position_ids, llama only); model_flag: "
        "model.accepts_loss_kwargs = True; trainer_flag: trainer.model_accepts_loss_kwargs = "
        "True; loss_func: a compute_loss_func dividing by num_items_in_batch; default ga",
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


def report(result: dict) -> list[str]:
    """The printed table: per-sample measured vs predicted weights, the worst ratio, the verdict."""
    from ..measured_step import MODELS, verdict

    # one step of a framework's epoch (lossviz.trainers.frameworks) carries its trainer's name
    framework = result.get("trainer", "transformers") != "transformers"
    if framework:
        from ..trainers.frameworks import MODELS, verdict  # noqa: F811 - another trainer's models

    exp = result["expected"]
    d = result["diff"][exp]
    full = result["diff"]["global"]["predicted_share"]
    where = locate(result["plan"])
    if result.get("header"):  # a merged record names its own step (lossviz probe-merge)
        head = result["header"]
    elif framework:
        from ..trainers.frameworks import framework_name

        head = (
            f"{framework_name(result['trainer'], result['version'])}, optimizer step {result['step']} of "
            f"{result['steps']}: {len(result['lengths'])} samples in {len(result['plan'][0])} of "
            f"ga-steps {result['ga_steps']} micro-batches x world-size {result['world_size']} "
            f"(per-device-batch-size {result['per_device_batch_size']}); setting {result['case']}"
        )
    else:
        from ..trainers.hf_trainer import MODELS as NETS

        head = (
            f"transformers {result['transformers']} Trainer on "
            f"{NETS[result.get('model', 'llama')]}, one optimizer step: "
            f"{len(result['lengths'])} samples = per-device-batch-size "
            f"{result['per_device_batch_size']} x ga-steps {result['ga_steps']} x world-size "
            f"{result['world_size']}; case {result['case']}, average_tokens_across_devices="
            f"{result['average_tokens_across_devices']}"
        )
    lines = [
        head,
        f"Weight of each sample in the step (sum over its tokens); predicted: lossviz's `{exp}` "
        f"model ({MODELS[exp]})",
        f"{'sample':>6} {'tokens':>6} {'rank':>4} {'mb':>3} {'measured':>9} {'predicted':>9} "
        f"{'full batch':>10} {'measured/full':>13}",
    ]
    ratios = []
    ids = result.get("samples", range(len(result["lengths"])))  # the epoch's index of each sample
    for i, n in enumerate(result["lengths"]):
        r, k = where[i]
        m, p = d["measured_share"][i], d["predicted_share"][i]
        ratios.append(m / full[i])
        lines.append(
            f"{ids[i]:>6} {n:>6} {r:>4} {k:>3} {m:>9.5f} {p:>9.5f} {full[i]:>10.5f} {ratios[-1]:>13.3f}"
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


def _run_framework(args: argparse.Namespace) -> int:
    """``--trainer lightning`` / ``accelerate``: one epoch over --lengths, a report per step."""
    from ..distributed import DistributedRunError
    from ..trainers import missing

    package = {"lightning": "pytorch_lightning", "accelerate": "accelerate"}[args.trainer]
    if missing("transformers", package):
        print(
            f"lossviz probe: error: --trainer {args.trainer} needs transformers and {package}: "
            "pip install 'lossviz[trainers]'",
            file=sys.stderr,
        )
        return 2
    from ..trainers.frameworks import measure, step_report

    setting = args.loop or {"lightning": "automatic", "accelerate": "accumulate"}[args.trainer]
    shape = {
        "per_device_batch_size": args.per_device_batch_size,
        "ga_steps": args.ga_steps,
        "world_size": args.world_size,
    }
    try:
        # one epoch: a list longer than one step is the epoch itself (its last window may be short)
        lengths = args.lengths
        if len(lengths) < step_samples(**shape):
            lengths, note = fill_step(lengths, step_samples(**shape), cut=False)
            if note and not args.json:
                print(f"--lengths: {note}: {lengths}")
        result = measure(
            args.trainer,
            setting,
            lengths,
            per_device_batch_size=args.per_device_batch_size,
            ga_steps=args.ga_steps,
            world_size=args.world_size,
            seed=args.seed,
        )
    except (ValueError, DistributedRunError) as err:
        print(f"lossviz probe: error: {err}", file=sys.stderr)
        return 2
    steps = [step_report(result, s) for s in range(len(result["steps"]))]
    if args.json:  # step 0 in today's shape, every step under "steps"
        print(json.dumps(dict(steps[0], steps=steps), indent=1))
    else:
        for i, step in enumerate(steps):
            print(("\n" if i else "") + "\n".join(report(step)))
    return 0


def run(args: argparse.Namespace) -> int:
    """Measure and print; 0 on success, 2 (with a message on stderr) on a bad setup or failure."""
    from tqdm.auto import tqdm

    from ..trainers import missing

    if args.trainer != "transformers":
        return _run_framework(args)

    if missing("transformers", "accelerate"):
        print(
            "lossviz probe: error: --trainer transformers needs transformers and accelerate: "
            "pip install 'lossviz[trainers]'",
            file=sys.stderr,
        )
        return 2
    from ..distributed import DistributedRunError
    from ..trainers.hf_trainer import measure

    shape = {
        "per_device_batch_size": args.per_device_batch_size,
        "ga_steps": args.ga_steps,
        "world_size": args.world_size,
    }
    try:
        if args.world_size > 8:
            raise ValueError(
                f"--world-size must be at most 8 local processes, got {args.world_size}"
            )
        lengths, note = fill_step(args.lengths, step_samples(**shape), cut=False)
        if note and not args.json:
            print(f"--lengths: {note}: {lengths}")
        with tqdm(
            total=1, desc=f"Trainer step on {args.world_size} process(es)", file=sys.stderr
        ) as bar:
            result = measure(
                lengths,
                **shape,
                case=args.case,
                model=args.model,
                average_tokens_across_devices=_ATAD[args.average_tokens_across_devices],
                seed=args.seed,
            )
            bar.update(1)
    except (ValueError, DistributedRunError) as err:
        print(f"lossviz probe: error: {err}", file=sys.stderr)
        return 2
    # lossviz's rule for the Trainer's dealing, beside the plan the probe read off the real step
    result["predicted_plan"] = trainer_dealing(len(lengths), **shape)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("\n".join(report(result)))
    return 0
