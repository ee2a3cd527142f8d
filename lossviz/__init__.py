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
    resolve_reduction,
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
    "resolve_reduction",
    "resolve_device",
    "sample_weights",
    "seed_all",
    "shift_labels",
    "token_losses",
    "weights",
]

# The later layers, one block per notebook idea.

# -- accumulation and data parallelism --
from .accumulation import (  # noqa: E402
    NORMALIZATIONS,
    accumulation_weights,
    micro_batch_weights,
    split_batch,
)
from .distributed import DistributedRunError, run_ddp  # noqa: E402
from .step_gradients import (  # noqa: E402
    accumulated_grad,
    flat_grad,
    gradient_gap,
    token_batch,
    weighted_grad,
)

__all__ += [
    "NORMALIZATIONS",
    "DistributedRunError",
    "accumulated_grad",
    "accumulation_weights",
    "flat_grad",
    "gradient_gap",
    "micro_batch_weights",
    "run_ddp",
    "split_batch",
    "token_batch",
    "weighted_grad",
]

# -- chat data --
from . import chat, prompt_loss, tokenizer  # noqa: E402
from .prompt_loss import completion_share, generation_ratio, ratio_means  # noqa: E402

__all__ += ["chat", "prompt_loss", "tokenizer", "completion_share", "generation_ratio"]
__all__ += ["ratio_means"]

# -- devices, precision and RL --
from . import precision, rl  # noqa: E402

__all__ += ["precision", "rl"]

# -- experiment --
from .experiments.sft_training import ExperimentConfig, run_experiment  # noqa: E402

__all__ += ["ExperimentConfig", "run_experiment"]

# -- measuring a real trainer --
from .accumulation import TRAINER_NORMALIZATIONS, plan_weights  # noqa: E402
from .probe import probe, recover_weights  # noqa: E402

__all__ += ["TRAINER_NORMALIZATIONS", "plan_weights", "probe", "recover_weights"]

# -- beyond token cross-entropy: preference pairs, distillation KL, modified token losses --
from . import distillation, preference, token_gradients  # noqa: E402

__all__ += ["distillation", "preference", "token_gradients"]
