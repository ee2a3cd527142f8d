"""lossviz: how token-level cross-entropy becomes one scalar loss, as a weight matrix per reduction.

import lossviz as lv
m = lv.mask_from_lengths([3, 7, 20])
lv.weights(m, "sample_mean").sum(dim=1)  # tensor([0.3333, 0.3333, 0.3333])

The public surface (``lv.__all__``, at most 30 names) is the math functions below and one submodule
per notebook idea; every other module is reachable as ``from lossviz import NAME``:

- cross-entropy (01): ``token_losses``, ``cross_entropy``, ``shift_labels``
- reductions (02, 03): ``weights``, ``reduce``, ``sample_weights``, ``REDUCTIONS``
  (``lv.reductions``: ``register``, ``resolve_reduction``, ``reduction_table``)
- batches (02): ``mask_from_lengths``, ``pad``, ``pack``, ``Batch`` (``lv.batching``)
- accumulation and data parallelism (04, 05): ``accumulation_weights``, ``plan_weights``,
  ``run_ddp`` (``lv.accumulation``: ``micro_batch_weights``, ``NORMALIZATIONS``;
  ``lv.step_shape``: who holds which sample of a step, under the Trainer's or the sampler's
  dealing; ``lv.distributed``; ``lv.step_gradients``: the same step on real gradients)
- chat data and the prompt-loss weight (06, 07): ``lv.chat``, ``lv.prompt_loss``
  (``completion_share``, ``generation_ratio``); ``lossviz.tokenizer``
- devices and precision (08): ``lv.devices``, ``lv.precision``; ``seed_all``
- RL aggregation (09, 14): ``lv.rl``; the experiments (10, 14): ``lv.experiments``
- measuring a trainer (11, 12): ``probe``, ``recover_weights``; ``lossviz.evaluation``,
  ``lossviz.tensor_parallel``
- beyond token cross-entropy (13): ``lossviz.preference``, ``lossviz.distillation``,
  ``lossviz.token_gradients``
"""

from . import (
    accumulation,
    batching,
    chat,
    devices,
    distributed,
    experiments,
    precision,
    prompt_loss,
    reductions,
    rl,
    step_gradients,
    step_shape,
)
from .accumulation import accumulation_weights, plan_weights
from .batching import Batch, mask_from_lengths, pack, pad
from .cross_entropy import cross_entropy, shift_labels, token_losses
from .devices import seed_all
from .distributed import run_ddp
from .probe import probe, recover_weights
from .prompt_loss import completion_share
from .reductions import REDUCTIONS, reduce, sample_weights, weights

__version__ = "0.1.0"

__all__ = [
    # functions and constants
    "token_losses",
    "cross_entropy",
    "shift_labels",
    "weights",
    "reduce",
    "sample_weights",
    "REDUCTIONS",
    "mask_from_lengths",
    "pad",
    "pack",
    "Batch",
    "accumulation_weights",
    "plan_weights",
    "run_ddp",
    "completion_share",
    "seed_all",
    "probe",
    "recover_weights",
    # submodules
    "accumulation",
    "batching",
    "chat",
    "devices",
    "distributed",
    "experiments",
    "precision",
    "prompt_loss",
    "reductions",
    "rl",
    "step_gradients",
    "step_shape",
]
