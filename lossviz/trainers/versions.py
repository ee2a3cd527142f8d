"""The same probe on several released transformers versions: what each Trainer does to the weights.

Each version is installed into its own folder (``pip install --target``) under the cache
(``$LOSSVIZ_CACHE``, default ``~/.cache/lossviz``), beside the environment's torch, and measured in
subprocesses with ``PYTHONPATH`` pointing there; the pinned version is the environment's own.
Three measurements per version, each one real ``Trainer`` step (:mod:`lossviz.trainers.hf_trainer`):

- ``ga``: lengths 3, 7, 20, 5, batch 2, GA 2 (micro-batches of 10 and 25 tokens);
- ``compute_loss``: the same with an override that returns ``model(**inputs).loss``;
- ``ranks``: lengths 12, 40, 7, 300, 5, 9, 30, 2, batch 1, GA 4, 2 gloo processes, the version's
  default ``average_tokens_across_devices``.

Whether a version counts one extra token per row (transformers pull request 46204) shows as a match with
the ``*_overcount`` models. A version that cannot be installed or run gets a row that says why.
``make version-table`` rebuilds ``lossviz/data/transformers_versions.json``:
``python -m lossviz version-table [--versions 4.45.2,5.24.0] [--out FILE] [--add]``; ``--add``
measures only the versions named and merges their rows into the cached table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ..data_files import data_file

__all__ = [
    "DATA",
    "PINNED",
    "SETUPS",
    "VERSIONS",
    "build_table",
    "install",
    "load_table",
    "merge_tables",
    "measure_version",
    "row_from_results",
]

PINNED = "5.24.0"
DATA = data_file("transformers_versions.json")
SETUPS = {
    "ga": {"lengths": [3, 7, 20, 5], "per_device_batch_size": 2, "ga_steps": 2},
    "ranks": {
        "lengths": [12, 40, 7, 300, 5, 9, 30, 2],
        "per_device_batch_size": 1,
        "ga_steps": 4,
        "world_size": 2,
    },
}
# Installed with --no-deps beside each version: an accelerate of its time, and a datasets whose
# huggingface_hub range matches the version's (the environment's datasets needs a newer hub, and
# the Trainer imports datasets when it is present).
_OLD_DATASETS = ("dill==0.3.8", "multiprocess==0.70.16")
VERSIONS = {
    "4.45.2": ("accelerate==1.0.1", "datasets==2.21.0", "fsspec==2024.6.1", *_OLD_DATASETS),
    "4.46.0": ("accelerate==1.0.1", "datasets==2.21.0", "fsspec==2024.6.1", *_OLD_DATASETS),
    "4.48.3": ("accelerate==1.3.0", "datasets==3.6.0", "fsspec==2025.3.0", *_OLD_DATASETS),
    "4.51.3": ("accelerate==1.6.0", "datasets==3.6.0", "fsspec==2025.3.0", *_OLD_DATASETS),
    "4.53.3": ("accelerate==1.8.1", "datasets==3.6.0", "fsspec==2025.3.0", *_OLD_DATASETS),
    "4.54.0": ("accelerate==1.9.0", "datasets==3.6.0", "fsspec==2025.3.0", *_OLD_DATASETS),
    "5.9.0": ("accelerate==1.13.0",),
    "5.11.0": ("accelerate==1.13.0",),
    "5.19.0": ("accelerate==1.13.0",),
    PINNED: (),
    "5.25.0": ("accelerate==1.16.0",),
}
# The order in which a cell names its model when several match (GA on one rank: global == local).
_PREFER = ("global", "naive", "unscaled", "local", "global_overcount", "local_overcount", "sum")


class InstallError(RuntimeError):
    """pip could not install a version; the message carries pip's last lines."""


def cache_dir() -> Path:
    """Where the versions are installed: ``$LOSSVIZ_CACHE/transformers`` (``~/.cache/lossviz``)."""
    return (
        Path(os.environ.get("LOSSVIZ_CACHE", Path.home() / ".cache" / "lossviz")) / "transformers"
    )


def _pip(target: Path, args: list[str], log: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), *args]
    with open(log, "a") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = [x for x in log.read_text().splitlines() if not x.startswith("WARNING")][-3:]
        raise InstallError(f"pip install {' '.join(args)} failed: " + " | ".join(tail))


def install(version: str, cache: Path | None = None) -> str | None:
    """Install ``version`` under the cache once; its ``PYTHONPATH`` (None for the pinned one)."""
    if version == PINNED:
        return None
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {sorted(VERSIONS)}, got {version!r}")
    d = (cache or cache_dir()) / version
    path = f"{d / 'extra'}{os.pathsep}{d / 'main'}"
    if (d / ".complete").exists():
        return path
    d.mkdir(parents=True, exist_ok=True)
    log = d / "pip.log"
    log.write_text("")
    _pip(d / "main", [f"transformers=={version}", "aiohttp"], log)
    _pip(d / "extra", ["--no-deps", *VERSIONS[version]], log)
    (d / ".complete").touch()
    return path


def _cell(result: dict) -> dict:
    matches = [m for m in _PREFER if m in result["matches"]]
    return {
        "model": matches[0] if matches else None,
        "matches": matches,
        "average_tokens_across_devices": result["average_tokens_across_devices"],
        "plan": result["plan"],
        "weights": [
            row[0] for row in result["measured"]
        ],  # every token of a sample weighs the same
        "shares": result["diff"]["global"]["measured_share"],
        "max_residual": result["max_residual"],
    }


def row_from_results(version: str, ga: dict, compute_loss: dict, ranks: dict) -> dict:
    """A table row from the three measurements of one version."""
    over = any(m.endswith("_overcount") for m in ga["matches"] + ranks["matches"])
    return {
        "version": version,
        "status": "measured",
        "reason": None,
        "ga": _cell(ga),
        "compute_loss": _cell(compute_loss),
        "ranks": _cell(ranks),
        "overcount": over,
    }


def measure_version(version: str, pythonpath: str | None = None, timeout: float = 300.0) -> dict:
    """Measure one installed version (see the module docstring); raises if a run fails."""
    from .hf_trainer import measure_runs

    setup = dict(SETUPS["ga"])
    lengths = setup.pop("lengths")
    one = measure_runs(
        lengths,
        [{"case": "ga"}, {"case": "compute_loss"}],
        pythonpath=pythonpath,
        python=sys.executable if pythonpath else None,
        timeout=timeout,
        **setup,
    )
    setup = dict(SETUPS["ranks"])
    lengths = setup.pop("lengths")
    ranks = measure_runs(lengths, [{"case": "ga"}], pythonpath=pythonpath, timeout=timeout, **setup)
    return row_from_results(one[0]["transformers"], one[0], one[1], ranks[0])


def build_table(versions, cache: Path | None = None, progress: bool = True) -> dict:
    """Install and measure each version; a failure becomes a row with its reason."""
    from tqdm.auto import tqdm

    rows = []
    for version in tqdm(list(versions), desc="transformers versions", disable=not progress):
        start = time.time()
        try:
            path = install(version, cache)
        except InstallError as err:
            rows.append({"version": version, "status": "not installed", "reason": str(err)})
            continue
        try:
            row = measure_version(version, path)
        except Exception as err:  # the reason goes into the table, never a silent gap
            first = str(err).strip().splitlines()
            rows.append({"version": version, "status": "failed", "reason": first[-1][:400]})
            continue
        row["seconds"] = round(time.time() - start, 1)
        rows.append(row)
    import torch

    return {"setups": SETUPS, "pinned": PINNED, "torch": torch.__version__, "rows": rows}


def load_table(path: Path | str = DATA) -> dict:
    """The cached table (``make version-table`` rebuilds it)."""
    with open(path) as f:
        return json.load(f)


def merge_tables(old: dict, new: dict) -> dict:
    """``old`` with ``new``'s rows put in: a version measured again replaces its row, a new one joins.

    Rows are ordered as :data:`VERSIONS` (versions it no longer names keep their place at the end).
    Both tables must share their setups, pinned version and torch: rows measured otherwise are not
    comparable, and the whole table has to be rebuilt.
    """
    for key in ("setups", "pinned", "torch"):
        if old.get(key) != new.get(key):
            raise ValueError(
                f"the cached table was measured with {key} {old.get(key)!r}, this run with "
                f"{new.get(key)!r}: its rows are not comparable; rebuild the whole table "
                "(without --add)"
            )
    rows = {r["version"]: r for r in old["rows"]}
    rows.update({r["version"]: r for r in new["rows"]})
    order = list(VERSIONS)
    ranked = sorted(rows, key=lambda v: order.index(v) if v in order else len(order))
    return {**old, "rows": [rows[v] for v in ranked]}
