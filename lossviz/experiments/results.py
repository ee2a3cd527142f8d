"""What both experiments share: writing results, the sign test, and a summary of a few numbers.

The two experiments (:mod:`.sft_training`, :mod:`.rl_training`) cache their runs as JSON in
``lossviz/data/``; their readers and statistics live in :mod:`.sft_results` and :mod:`.rl_results`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from pathlib import Path

from .tasks import TaskConfig

__all__ = ["load_results_file", "save_results", "check_writable", "fallback_path", "spread"]
__all__ += ["sign_test", "config_from_results"]


def load_results_file(path: Path, command: str) -> dict:
    """The results JSON at ``path``; if it is missing, an error naming the command that makes it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no results at {path}; create them with `python -m lossviz {command} --out {path}`"
        )
    return json.loads(path.read_text())


def config_from_results(cls: type, results: dict):
    """``cls(...)`` (an experiment's config dataclass) as ``results["config"]`` stored it: JSON lists
    back to tuples, the task through :meth:`TaskConfig.from_dict`."""
    stored = dict(results["config"])
    task = TaskConfig.from_dict(stored.pop("task"))
    return cls(task=task, **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})


def save_results(results: dict, path: str | Path) -> Path:
    """Write ``results`` as compact JSON (one run per line) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = results["runs"]
    head = json.dumps({k: v for k, v in results.items() if k != "runs"})
    lines = ",\n".join(json.dumps(r, separators=(",", ":")) for r in runs)
    path.write_text(head[:-1] + ',\n"runs": [\n' + lines + "\n]}\n")
    return path


def check_writable(path: str | Path) -> None:
    """Raise an ``OSError`` that says why ``path`` cannot receive the results; checked before training.

    Creates the missing parent folders and a probe file, removed again, in the parent.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"{path} is a folder; give a file name such as {path / 'results.json'}"
        )
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise NotADirectoryError(f"{path}: {existing} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".lossviz-probe-"):
            pass
    except OSError as err:
        raise OSError(f"{path} cannot be written ({err.strerror or err})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{path} exists and is not writable")


def fallback_path(prefix: str = "lossviz-experiment-") -> Path:
    """A new temporary JSON file: where finished runs go when ``--out`` failed after training."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".json")
    os.close(fd)
    return Path(name)


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of ``values``."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def sign_test(differences) -> float:
    """Two-sided exact sign test: ``P(a split at least this uneven | + and - equally likely)``.

    Zeros are dropped; with ``n`` non-zero differences of which ``k`` are the rarer sign,
    ``p = min(1, 2 * sum_{i <= k} C(n, i) / 2^n)``.
    """
    signs = [d > 0 for d in differences if d != 0]
    n, k = len(signs), min(sum(signs), len(signs) - sum(signs))
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
