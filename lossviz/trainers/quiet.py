"""One quiet one-step CPU setup for running a real trainer here: nothing printed, saved or reported.

Every measurement in :mod:`lossviz.trainers` runs a released trainer (transformers' ``Trainer``,
TRL's ``SFTTrainer``, ``GRPOTrainer``) for one step on a tiny model. They share this setup:

    args = quiet_args(output_dir=tmp, per_device_train_batch_size=2)   # TrainingArguments
    args = quiet_args(SFTConfig, output_dir=tmp, ...)                     # TRL configs subclass it
    trainer = quiet_trainer(Trainer, model=model, args=args, train_dataset=data)
    with one_thread():
        trainer.train()

Needs the ``trainers`` extra (transformers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterator

from ..devices import torch_threads

__all__ = ["QUIET", "one_thread", "quiet_args", "quiet_trainer"]

# one optimizer step that measures and never moves the weights, on the CPU, with no logging,
# progress bar, checkpoint, tracker or dataloader worker; the device flag is added by quiet_args
QUIET = {
    "max_steps": 1,
    "learning_rate": 0.0,
    "report_to": "none",
    "save_strategy": "no",
    "logging_strategy": "no",
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
}


def quiet_args(config_class=None, /, **settings):
    """``config_class(**QUIET, use_cpu=True, **settings)``, by default a ``TrainingArguments``.

    TRL's configs (``SFTConfig``, ``GRPOConfig``, ...) subclass ``TrainingArguments`` and take the
    same keys. ``settings`` (``output_dir`` included) override :data:`QUIET`. Releases before
    ``use_cpu`` existed (transformers < 4.34) get ``no_cuda=True`` instead.
    """
    if config_class is None:
        from transformers import TrainingArguments as config_class
    known = {f.name for f in dataclasses.fields(config_class)}
    if "output_dir" not in settings:
        raise ValueError("quiet_args needs output_dir= (a temporary folder: nothing is written)")
    kw = dict(QUIET)
    kw["use_cpu" if "use_cpu" in known else "no_cuda"] = True
    kw.update(settings)
    unknown = sorted(set(kw) - known)
    if unknown:
        raise ValueError(
            f"{config_class.__name__} has no field {unknown}: this release does not know them"
        )
    return config_class(**kw)


def quiet_trainer(trainer_class, /, **kwargs):
    """``trainer_class(**kwargs)`` with datasets' progress bars off and ``PrinterCallback`` removed.

    ``PrinterCallback`` prints the run's metrics to stdout even with logging off; datasets draws a
    progress bar for every ``map`` a TRL trainer runs on its dataset.
    """
    from transformers.trainer_callback import PrinterCallback

    with contextlib.suppress(ImportError):
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    trainer = trainer_class(**kwargs)
    trainer.remove_callback(PrinterCallback)
    return trainer


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread and the objects that exist now left out of garbage collection, meanwhile.

    A tiny step is ~15 ms: on a busy machine torch's thread pool fighting for the cores made single
    steps take up to 0.8 s (one thread: never above 20 ms), and accelerate's ``gc.collect()`` at the
    end of ``train()`` walked every object of the process (half a million with torch, transformers
    and matplotlib loaded; 0.2-1 s). Frozen objects are skipped; the step's own garbage is still
    collected, and afterwards both settings are as before.
    """
    with torch_threads(1):
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
