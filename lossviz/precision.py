"""How many digits a loss keeps when its per-token losses are added in float32, bfloat16 or float16.

Per-token losses ``x: [n]`` (float64, the reference) are rounded to a dtype and reduced two ways:

* ``"sequential"``: a running total kept in the dtype, ``total = total + x_t`` token after token
  (what a hand-written loop or a low-precision accumulator does). Each step rounds to the dtype.
* ``"torch"``: ``torch.sum`` / ``torch.mean`` of the whole dtype tensor. On the CPU torch adds
  bfloat16/float16 in a float32 accumulator and rounds the result once, so it loses far fewer digits
  but still overflows when the result does not fit (float16's largest finite value is 65504).

Formats: float32 has 24 significant bits, bfloat16 8, float16 11 (``torch.finfo(dtype).eps`` is
``2**-23``, ``2**-7``, ``2**-10``). Adding ``x`` to a total ``S`` changes nothing once ``x`` is below half
the spacing of numbers near ``S``: in bfloat16, ``256 + 1 == 256``.

:func:`curves` computes every curve once for up to ``MAX_TOKENS`` tokens and caches it, so a slider over
the token count only looks values up.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checks import ArgumentTypeError, integer, number, positive_int
from .data_files import data_file

__all__ = [
    "DTYPES",
    "MAX_TOKENS",
    "METHODS",
    "PRECISION_REDUCTIONS",
    "PrecisionCurves",
    "compare_devices",
    "compute_curves",
    "curves",
    "first_overflow",
    "load_curves",
    "logsoftmax_error",
    "per_token_losses",
    "relative_error",
    "round_to",
    "save_curves",
    "sequential_sum",
    "spacing",
    "torch_reduce",
]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PRECISION_REDUCTIONS = ("sum", "token_mean")
METHODS = ("sequential", "torch")
MAX_TOKENS = 2**22  # 4,194,304 tokens: a few long-context batches
_SIGNIFICANT_BITS = {torch.float32: 24, torch.bfloat16: 8, torch.float16: 11}


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _SIGNIFICANT_BITS:
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")


def per_token_losses(
    n: int, *, seed: int = 0, low: float = 2.0, high: float = 10.0
) -> torch.Tensor:
    """``n`` per-token losses drawn uniformly from ``[low, high]`` (float64, ``[n]``), seeded."""
    n = positive_int("n", n)
    low, high = number("low", low), number("high", high)
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    gen = torch.Generator().manual_seed(integer("seed", seed))
    return low + (high - low) * torch.rand(n, dtype=torch.float64, generator=gen)


def round_to(x: torch.Tensor, dtype: str | torch.dtype) -> torch.Tensor:
    """``x`` rounded to ``dtype`` (round to nearest even) and returned as float64, same shape."""
    return _losses(x).to(_dtype(dtype)).to(torch.float64)


def spacing(value: float, dtype: str | torch.dtype) -> float:
    """Distance from ``value`` (> 0) to the next larger number of ``dtype``: ``2**(e - p + 1)``.

    ``e = max(floor(log2 value), e_min)``, ``p`` the significant bits, ``e_min`` the exponent of the
    smallest normal number: below it (subnormals) the spacing stays ``2**(e_min - p + 1)``
    (float32: ``2**-149``, float16: ``2**-24``). ``spacing(256, "bfloat16") == 2``.
    """
    value = number("value", value)
    if not value > 0:
        raise ValueError(f"value must be positive and finite, got {value}")
    dt = _dtype(dtype)
    smallest_normal_exponent = math.frexp(torch.finfo(dt).tiny)[1] - 1
    exponent = max(math.frexp(value)[1] - 1, smallest_normal_exponent)
    return 2.0 ** (exponent - _SIGNIFICANT_BITS[dt] + 1)


def sequential_sum(x: torch.Tensor, dtype: str | torch.dtype) -> np.ndarray:
    """Every prefix total of a running sum kept in ``dtype``: ``S_t = round(S_{t-1} + round(x_t))``.

    ``x: [n]`` float64 losses (> 0) -> ``[n]`` float64 array of ``S_1 .. S_n``. float32 uses NumPy's
    sequential ``add.accumulate``; bfloat16/float16 loop in torch until the total can no longer move
    (every later ``x_t`` is below half the spacing at ``S``, or ``S`` is inf), then repeat it.
    """
    dt = _dtype(dtype)
    x = _losses(x)
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"x must be a non-empty 1-d tensor, got shape {tuple(x.shape)}")
    xd = x.to(dt)
    if dt == torch.float32:
        return np.add.accumulate(xd.numpy()).astype(np.float64)
    values = xd.to(torch.float64).numpy()
    if bool((values <= 0).any()):
        raise ValueError("sequential_sum expects positive losses")
    suffix_max = np.maximum.accumulate(values[::-1])[::-1]
    out = np.empty(len(values), dtype=np.float64)
    total = torch.zeros((), dtype=dt)
    for t in range(len(values)):
        total = total + xd[t]
        s = float(total)
        out[t] = s
        frozen = math.isinf(s) or (t + 1 < len(values) and spacing(s, dt) / 2 > suffix_max[t + 1])
        if frozen:
            out[t + 1 :] = s
            break
    return out


def _losses(x: object) -> torch.Tensor:
    """Per-token losses as a float tensor (a list of numbers is accepted)."""
    if isinstance(x, (list, tuple)):
        x = torch.tensor([number(f"x[{i}]", v) for i, v in enumerate(x)], dtype=torch.float64)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ArgumentTypeError(
            f"x must be a floating-point tensor of per-token losses [n], got {type(x).__name__}"
        )
    return x


def torch_reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    """``x.sum()`` or ``x.mean()`` in ``x``'s own dtype and device (``reduction``: sum, token_mean)."""
    x = _losses(x)
    if reduction == "sum":
        return x.sum()
    if reduction == "token_mean":
        return x.mean()
    raise ValueError(f"reduction must be one of {PRECISION_REDUCTIONS}, got {reduction!r}")


def relative_error(value: np.ndarray | float, reference: np.ndarray | float) -> np.ndarray:
    """``|value - reference| / |reference|``; an overflowed (inf) value gives inf."""
    value = np.asarray(value, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(value - reference) / np.abs(reference)
    return np.where(np.isfinite(value), err, np.inf)


def first_overflow(x: torch.Tensor, dtype: str | torch.dtype = "float16") -> int | None:
    """Smallest ``n`` with ``torch.sum(x[:n].to(dtype))`` infinite, or None if the full sum fits."""
    xd = _losses(x).to(_dtype(dtype))
    if bool(torch.isfinite(xd.sum())):
        return None
    lo, hi = 0, len(xd)  # sum of x[:lo] finite, of x[:hi] infinite (partial sums grow: x > 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bool(torch.isfinite(xd[:mid].sum())):
            lo = mid
        else:
            hi = mid
    return hi


def _grid(max_tokens: int, points_per_decade: int) -> np.ndarray:
    ns = np.unique(
        np.round(
            np.logspace(
                0, math.log10(max_tokens), 1 + int(points_per_decade * math.log10(max_tokens))
            )
        ).astype(np.int64)
    )
    return ns[(ns >= 1) & (ns <= max_tokens)]


@dataclass(frozen=True)
class PrecisionCurves:
    """Values of every (dtype, reduction, method) at the token counts ``ns``, with the float64 reference."""

    ns: np.ndarray  # [K] token counts, log-spaced from 1 to max_tokens
    reference: dict  # reduction -> [K] float64 value of the unrounded losses
    values: dict  # (dtype, reduction, method) -> [K] float64 value computed in that dtype
    stall: dict  # dtype -> first n from which the sequential total never changes (None if never)
    overflow: dict  # dtype -> first n at which torch.sum overflows to inf (None if never)
    seed: int
    low: float
    high: float

    def error(self, dtype: str, reduction: str, method: str) -> np.ndarray:
        """Relative error ``[K]`` against the float64 reference."""
        return relative_error(self.values[(dtype, reduction, method)], self.reference[reduction])

    def at(self, n: int) -> int:
        """Index of the grid point nearest to ``n`` on a log scale."""
        return int(np.argmin(np.abs(np.log(self.ns) - math.log(max(int(n), 1)))))


def compute_curves(
    max_tokens: int = MAX_TOKENS,
    points_per_decade: int = 12,
    *,
    seed: int = 0,
    low: float = 2.0,
    high: float = 10.0,
) -> PrecisionCurves:
    """All precision curves for ``per_token_losses(max_tokens, seed=seed)`` (a few seconds for 4M)."""
    x = per_token_losses(max_tokens, seed=seed, low=low, high=high)
    ns = _grid(max_tokens, points_per_decade)
    ref_prefix = np.cumsum(x.numpy())  # float64 sequential: error ~ n * 1e-16, far below the rest
    reference = {"sum": ref_prefix[ns - 1], "token_mean": ref_prefix[ns - 1] / ns}
    values, stall, overflow = {}, {}, {}
    for name, dt in DTYPES.items():
        seq = sequential_sum(x, dt)
        values[(name, "sum", "sequential")] = seq[ns - 1]
        means = torch.from_numpy(seq[ns - 1] / ns)
        values[(name, "token_mean", "sequential")] = round_to(means, dt).numpy()
        moved = np.flatnonzero(seq[1:] != seq[:-1])
        last_move = int(moved[-1]) + 2 if len(moved) else 1
        stall[name] = last_move if last_move < max_tokens else None
        xd = x.to(dt)
        for reduction in PRECISION_REDUCTIONS:
            values[(name, reduction, "torch")] = np.array(
                [float(torch_reduce(xd[:n], reduction)) for n in ns]
            )
        overflow[name] = first_overflow(x, dt)
    return PrecisionCurves(ns, reference, values, stall, overflow, seed, low, high)


TABLE_PATH = data_file("precision_curves.json")


def save_curves(table: PrecisionCurves, path: Path = TABLE_PATH) -> None:
    """Write a :class:`PrecisionCurves` as JSON (the table :func:`curves` reads)."""
    doc = {
        "ns": table.ns.tolist(),
        "reference": {k: v.tolist() for k, v in table.reference.items()},
        "values": {"|".join(k): v.tolist() for k, v in table.values.items()},
        "stall": table.stall,
        "overflow": table.overflow,
        "seed": table.seed,
        "low": table.low,
        "high": table.high,
    }
    Path(path).write_text(json.dumps(doc, indent=0) + "\n")


def load_curves(path: Path = TABLE_PATH) -> PrecisionCurves:
    """Read a table written by :func:`save_curves`."""
    doc = json.loads(Path(path).read_text())
    return PrecisionCurves(
        ns=np.array(doc["ns"], dtype=np.int64),
        reference={k: np.array(v) for k, v in doc["reference"].items()},
        values={tuple(k.split("|")): np.array(v) for k, v in doc["values"].items()},
        stall=doc["stall"],
        overflow=doc["overflow"],
        seed=doc["seed"],
        low=doc["low"],
        high=doc["high"],
    )


@functools.lru_cache(maxsize=4)
def curves(max_tokens: int = MAX_TOKENS, *, seed: int = 0) -> PrecisionCurves:
    """The precision curves: the stored table for the defaults, else :func:`compute_curves` (cached).

    Rebuild the stored table with ``python -m lossviz.precision`` after changing how it is computed;
    ``tests/test_precision.py`` checks it against a fresh computation.
    """
    if max_tokens == MAX_TOKENS and seed == 0 and TABLE_PATH.exists():
        return load_curves()
    return compute_curves(max_tokens, seed=seed)


def logsoftmax_error(
    num_tokens: int = 128, vocab: int = 32000, *, seed: int = 0, margin: float = 8.0
) -> dict[str, float]:
    """Per-token loss error of log-softmax done in bfloat16 vs in float32, from the same bf16 logits.

    ``logits: [num_tokens, vocab]`` ~ N(0, 2²) with ``margin`` added at each label, rounded to bfloat16
    (what a bf16 model's head produces). Reference: float64 log-softmax of those same logits. Returns
    max/mean absolute error of the per-token losses and the error of their mean, for both paths.
    """
    num_tokens, vocab = positive_int("num_tokens", num_tokens), positive_int("vocab", vocab)
    margin = number("margin", margin)
    gen = torch.Generator().manual_seed(integer("seed", seed))
    logits = 2.0 * torch.randn(num_tokens, vocab, generator=gen)
    labels = torch.randint(0, vocab, (num_tokens,), generator=gen)
    logits[torch.arange(num_tokens), labels] += margin
    logits = logits.to(torch.bfloat16)
    rows = torch.arange(num_tokens)
    ref = -torch.log_softmax(logits.double(), dim=-1)[rows, labels]
    out = {"loss_mean": float(ref.mean())}
    for name, dt in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        loss = -torch.log_softmax(logits.to(dt), dim=-1)[rows, labels].double()
        err = (loss - ref).abs()
        out[f"{name}_max_abs"] = float(err.max())
        out[f"{name}_mean_abs"] = float(err.mean())
        out[f"{name}_mean_loss_abs"] = float((loss.mean() - ref.mean()).abs())
    return out


def compare_devices(
    device: str, n: int = 1_000_000, *, dtype: str = "float32", seed: int = 0
) -> dict[str, float]:
    """``torch.sum`` and ``torch.mean`` of the same ``n`` losses on the CPU and on ``device``.

    Returns both values, their relative difference and each one's relative error against float64.
    On ``device="cpu"`` the two sides are the same computation (the difference is 0).
    """
    from .devices import resolve_device

    dev = resolve_device(device)
    x = per_token_losses(positive_int("n", n), seed=seed)
    xd = x.to(_dtype(dtype))
    out = {"n": float(n)}
    for reduction in PRECISION_REDUCTIONS:
        ref = float(torch_reduce(x, reduction))
        cpu = float(torch_reduce(xd, reduction))
        other = float(torch_reduce(xd.to(dev), reduction).cpu())
        out[f"{reduction}_cpu"] = cpu
        out[f"{reduction}_device"] = other
        out[f"{reduction}_rel_diff"] = float(relative_error(other, cpu))
        out[f"{reduction}_cpu_rel_err"] = float(relative_error(cpu, ref))
        out[f"{reduction}_device_rel_err"] = float(relative_error(other, ref))
    return out


if __name__ == "__main__":
    save_curves(compute_curves())
    print(f"wrote {TABLE_PATH.name}")
