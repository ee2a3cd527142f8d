"""verl's ``agg_loss`` (verl 0.9.1), run from the installed wheel's own source.

``make`` installs the verl wheel without its dependencies into ``.venv/verl`` (verl pins ray, tensordict
and ``transformers < 5.11``, none of which this environment can hold next to transformers 5.24). Its
module ``verl.trainer.ppo.core_algos`` cannot be imported without them (``verl/__init__.py`` imports
ray; ``verl.utils.torch_functional`` imports tensordict), so :func:`load_agg_loss` reads the source of
``agg_loss`` from that file and of ``masked_sum`` from ``verl/utils/torch_functional.py`` and executes
those two functions unchanged, with torch; nothing of verl is copied into lossviz.

    agg_loss = load_agg_loss()
    agg_loss(loss_mat, loss_mask, "seq-mean-token-sum-norm", dp_size=1, global_batch_size=None)
"""

from __future__ import annotations

import ast
import os
import sys
from functools import lru_cache
from pathlib import Path

__all__ = ["VERL_LOSS_AGG_MODES", "VERL_VERSION", "load_agg_loss", "measured_table", "verl_root"]

VERL_VERSION = "0.9.1"  # the Makefile installs this version; a test checks the two agree
# every loss_agg_mode verl 0.9.1's agg_loss accepts (read from its source by a test)
VERL_LOSS_AGG_MODES = (
    "token-mean",
    "token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
)


def verl_root() -> Path:
    """The folder that holds the installed ``verl`` package: ``$LOSSVIZ_VERL_PATH`` or ``.venv/verl``."""
    root = Path(os.environ.get("LOSSVIZ_VERL_PATH", Path(sys.prefix) / "verl"))
    version = root / "verl" / "version" / "version"
    if not version.is_file():
        raise FileNotFoundError(
            f"verl is not installed in {root}; run `make .venv/.installed` (it installs verl=="
            f"{VERL_VERSION} there without dependencies) or set LOSSVIZ_VERL_PATH"
        )
    found = version.read_text().strip()
    if found != VERL_VERSION:
        raise RuntimeError(f"{root} holds verl {found}, lossviz measures verl {VERL_VERSION}")
    return root


def _function_source(path: Path, name: str) -> str:
    """The source of the top-level function ``name`` in ``path``, decorators dropped."""
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            node.decorator_list = []
            return ast.get_source_segment(text, node) or ""
    raise LookupError(f"{path} has no function {name}")


@lru_cache(maxsize=1)
def load_agg_loss():
    """verl 0.9.1's ``agg_loss(loss_mat, loss_mask, loss_agg_mode, dp_size=1, batch_num_tokens=None,
    global_batch_size=None, loss_scale_factor=None)``, executed from the installed source."""
    import types
    from typing import Optional

    import torch

    pkg = verl_root() / "verl"
    namespace: dict = {"torch": torch, "Optional": Optional}
    exec(_function_source(pkg / "utils" / "torch_functional.py", "masked_sum"), namespace)  # noqa: S102
    namespace["verl_F"] = types.SimpleNamespace(masked_sum=namespace["masked_sum"])
    exec(_function_source(pkg / "trainer" / "ppo" / "core_algos.py", "agg_loss"), namespace)  # noqa: S102
    return namespace["agg_loss"]


def measured_table(mask, losses) -> list[dict]:
    """One row per ``loss_agg_mode``: lossviz's W formula and reduction, and the largest
    ``|dL/d loss_mat - W|`` of verl's ``agg_loss`` on ``losses, mask: [B, T]`` (one rank)."""

    from .. import rl

    agg_loss = load_agg_loss()
    rows = []
    for name in VERL_LOSS_AGG_MODES:
        mode = rl.resolve_mode(f"verl:{name}")
        lm = losses.detach().clone().requires_grad_(True)
        agg_loss(lm, mask, name).backward()
        err = float((lm.grad - rl.mode_weights(mask, mode)).abs().max())
        rows.append(
            {
                "setting": f"loss_agg_mode={name}",
                "W": mode.weight,
                "reduction": mode.reduction,
                "error": err,
            }
        )
    return rows
