"""lossviz: how token-level cross-entropy becomes one scalar loss, as a weight matrix per reduction.

import lossviz as lv
m = lv.mask_from_lengths([3, 7, 20])
lv.weights(m, "sample_mean").sum(dim=1)  # tensor([0.3333, 0.3333, 0.3333])
"""

from .batching import Batch, mask_from_lengths, pack, pack_lengths, pad
from .cross_entropy import check_inputs, cross_entropy, shift_labels, token_losses
from .devices import available_devices, default_device, describe_devices, resolve_device, seed_all
from .reductions import (
    REDUCTIONS,
    Reduction,
    reduce,
    reduction_table,
    register,
    resolve,
    sample_weights,
    weights,
)

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "REDUCTIONS",
    "Reduction",
    "available_devices",
    "check_inputs",
    "cross_entropy",
    "default_device",
    "describe_devices",
    "mask_from_lengths",
    "pack",
    "pack_lengths",
    "pad",
    "reduce",
    "reduction_table",
    "register",
    "resolve",
    "resolve_device",
    "sample_weights",
    "seed_all",
    "shift_labels",
    "token_losses",
    "weights",
]

# Later layers, one block each (kept apart so that parallel work merges cleanly).

# -- accumulation and data parallelism --

# -- chat data --

# -- devices, precision and RL --

# -- experiment --
from .training import ExperimentConfig, run_experiment  # noqa: E402

__all__ += ["ExperimentConfig", "run_experiment"]
