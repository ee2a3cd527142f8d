"""Precision claims of notebook 08, each checked against real torch arithmetic."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossviz import precision as P

TABLE = P.curves()


def torch_loop(x: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """The running total a hand-written loop keeps in ``dtype``: the ground truth for sequential_sum."""
    xd = x.to(dtype)
    total = torch.zeros((), dtype=dtype)
    out = []
    for v in xd:
        total = total + v
        out.append(float(total))
    return np.array(out)


def test_spacing_matches_finfo_and_the_256_plus_1_example():
    for dt in P.DTYPES.values():
        assert P.spacing(1.0, dt) == torch.finfo(dt).eps
    assert P.spacing(256.0, "bfloat16") == 2.0
    one, big = torch.tensor(1.0, dtype=torch.bfloat16), torch.tensor(256.0, dtype=torch.bfloat16)
    assert float(big + one) == 256.0  # bf16: adding 1 to 256 does nothing
    assert float(big.float() + one.float()) == 257.0
    total = torch.tensor(4096.0, dtype=torch.bfloat16)
    assert P.spacing(4096.0, "bfloat16") == 32 and float(total + 6.0) == 4096.0
    assert P.spacing(32768.0, "float16") == 32 and P.spacing(4.0, "bfloat16") == 2**-5
    with pytest.raises(ValueError):
        P.spacing(0.0, "float16")
    with pytest.raises(ValueError):
        P.spacing(1.0, "float64")


@pytest.mark.parametrize("dtype", list(P.DTYPES.values()))
def test_sequential_sum_equals_a_real_torch_loop(dtype):
    x = P.per_token_losses(12_000, seed=3)
    n = 12_000 if dtype != torch.float32 else 3_000
    np.testing.assert_array_equal(P.sequential_sum(x[:n], dtype), torch_loop(x[:n], dtype))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.01, 300.0), min_size=1, max_size=60),
    st.sampled_from(list(P.DTYPES)),
)
def test_sequential_sum_property(values, dtype):
    x = torch.tensor(values, dtype=torch.float64)
    np.testing.assert_array_equal(P.sequential_sum(x, dtype), torch_loop(x, P.DTYPES[dtype]))


def test_low_precision_running_totals_stall_instead_of_growing():
    bf16 = TABLE.values[("bfloat16", "sum", "sequential")]
    fp16 = TABLE.values[("float16", "sum", "sequential")]
    assert bf16[-1] == 4096.0 and fp16[-1] == 32768.0  # frozen totals of ~4M losses in [2, 10]
    assert TABLE.stall["bfloat16"] < 1_000 < TABLE.stall["float16"] < 10_000
    assert TABLE.stall["float32"] is None
    assert np.isfinite(fp16).all()  # a float16 running total stalls before it can overflow
    i = TABLE.at(10_000)
    assert TABLE.error("bfloat16", "sum", "sequential")[i] > 0.5


def test_fp16_torch_sum_overflows_near_1e4_tokens_but_mean_does_not():
    n = TABLE.overflow["float16"]
    x = P.per_token_losses(P.MAX_TOKENS)
    assert 10_000 < n < 12_000  # 65504 / mean loss 6 = 10917
    assert math.isinf(float(x[:n].half().sum())) and math.isfinite(float(x[: n - 1].half().sum()))
    assert float(x[: n - 1].sum()) <= 65504 + 16 < float(x[:n].sum()) + 16
    assert np.isfinite(TABLE.values[("float16", "token_mean", "torch")]).all()
    assert TABLE.overflow["bfloat16"] is None and TABLE.overflow["float32"] is None
    assert P.first_overflow(torch.ones(10, dtype=torch.float64), "float16") is None


def test_error_bounds_stated_in_the_notebook():
    for reduction in P.PRECISION_REDUCTIONS:
        assert TABLE.error("float32", reduction, "torch").max() < 2**-22
        assert TABLE.error("bfloat16", reduction, "torch").max() < 2**-7
        seq = TABLE.error("float32", reduction, "sequential")[-1]
        assert seq > 100 * TABLE.error("float32", reduction, "torch")[-1]


def _close_as_torch_rounds(
    name: str, cached: np.ndarray, fresh: np.ndarray, ref: np.ndarray
) -> None:
    """``torch.sum``/``mean`` values from another CPU: equal up to the rounding the kernel may differ in.

    float32: both lie within 2^-22 of float64 (checked over the grid), so within 2^-21 of each other;
    bfloat16/float16 accumulate in float32 and round once: at most one spacing of the dtype apart.
    Measured on one CPU under AVX-512, AVX2 and default kernels, 1 and 4 threads: equal to the bit.
    """
    cached, fresh, ref = (np.asarray(a, dtype=np.float64) for a in (cached, fresh, ref))
    inf = np.isinf(cached)
    assert (inf == np.isinf(fresh)).all(), f"{name}: overflow at other counts"
    if name == "float32":
        tol = 2.0**-21 * np.abs(ref[~inf])
    else:
        tol = np.array([P.spacing(abs(v), name) for v in ref[~inf]])
    assert (np.abs(cached[~inf] - fresh[~inf]) <= tol).all(), name


def test_stored_table_matches_a_fresh_computation():
    """The stored curves are what this code computes on this CPU, up to kernel rounding.

    Running totals are one add at a time, the same on every CPU: compared to the bit. ``torch.sum``
    may add in another order on another CPU: compared within the rounding bound it provably meets.
    """
    x = P.per_token_losses(P.MAX_TOKENS, seed=TABLE.seed)
    assert (TABLE.seed, TABLE.low, TABLE.high, int(TABLE.ns[-1])) == (0, 2.0, 10.0, P.MAX_TOKENS)
    for i in (0, 25, 50, len(TABLE.ns) - 1):
        n = int(TABLE.ns[i])
        assert TABLE.reference["sum"][i] == pytest.approx(math.fsum(x[:n].tolist()), rel=1e-12)
        for name, dt in P.DTYPES.items():
            for reduction in P.PRECISION_REDUCTIONS:
                fresh = float(P.torch_reduce(x[:n].to(dt), reduction))
                cached = TABLE.values[(name, reduction, "torch")][i]
                ref = TABLE.reference[reduction][i]
                _close_as_torch_rounds(name, [cached], [fresh], [ref])
            if n <= 20_000:
                assert (
                    TABLE.values[(name, "sum", "sequential")][i] == P.sequential_sum(x[:n], dt)[-1]
                )
    assert TABLE.values[("float32", "sum", "sequential")][-1] == P.sequential_sum(x, "float32")[-1]
    assert TABLE.overflow["float16"] == P.first_overflow(x, "float16")
    small = P.compute_curves(5_000, seed=0)
    assert small.stall["bfloat16"] == TABLE.stall["bfloat16"]
    common, i_small, i_big = np.intersect1d(small.ns, TABLE.ns, return_indices=True)
    assert len(common) >= 10
    for (name, reduction, method), vals in small.values.items():
        cached = TABLE.values[(name, reduction, method)][i_big]
        if method == "torch":
            ref = TABLE.reference[reduction][i_big]
            _close_as_torch_rounds(name, cached, vals[i_small], ref)
        else:
            np.testing.assert_array_equal(vals[i_small], cached)


def test_float16_overflow_count_is_the_same_on_every_cpu():
    """10,872 is far from a tie: float32 rounding (~0.01 here) cannot move it by one token.

    float16 rounds a total to inf from 65520 on (65504 plus half its spacing of 32). The exact sums of
    the first 10,871 and 10,872 losses sit more than 1 below and above it.
    """
    x = P.per_token_losses(P.MAX_TOKENS, seed=TABLE.seed)
    n = TABLE.overflow["float16"]
    below, above = math.fsum(x[: n - 1].tolist()), math.fsum(x[:n].tolist())
    assert below < 65520 - 1 and above > 65520 + 1
    assert 2**-22 * 65520 < 0.02  # the most a float32 torch.sum can be off here


def test_save_and_load_roundtrip(tmp_path):
    small = P.compute_curves(300, points_per_decade=4, seed=1)
    P.save_curves(small, tmp_path / "t.json")
    back = P.load_curves(tmp_path / "t.json")
    np.testing.assert_array_equal(back.ns, small.ns)
    for key in small.values:
        np.testing.assert_array_equal(back.values[key], small.values[key])
    assert back.stall == small.stall and back.overflow == small.overflow


def test_logsoftmax_in_bf16_loses_digits_that_fp32_keeps():
    err = P.logsoftmax_error(num_tokens=64, vocab=8192)
    assert err["bfloat16_max_abs"] > 1e-3
    assert err["float32_max_abs"] < 1e-5
    assert err["bfloat16_max_abs"] > 1000 * err["float32_max_abs"]
    assert 1.0 < err["loss_mean"] < 10.0


def test_logsoftmax_numbers_quoted_in_notebook_08():
    """The bfloat16 digits come from bfloat16's grid: 0.0257 and 0.007415 under AVX-512, AVX2 and
    default kernels with 1 and 4 threads, so two significant digits are safe. The float32 error is
    kernel rounding (1.3e-6 to 2.0e-6 max across those): only its bound is quoted."""
    err = P.logsoftmax_error(num_tokens=128, vocab=32000)
    assert (round(err["bfloat16_max_abs"], 3), round(err["bfloat16_mean_abs"], 4)) == (
        0.026,
        0.0074,
    )
    assert f"{err['bfloat16_mean_loss_abs']:.1g}" == "0.0003"
    assert err["float32_max_abs"] < 1e-5


def test_transformers_upcasts_logits_before_the_loss():
    import inspect

    loss_utils = pytest.importorskip("transformers.loss.loss_utils")
    assert "logits.float()" in inspect.getsource(loss_utils.ForCausalLMLoss)


def test_cpu_sum_is_deterministic_but_order_dependent():
    x = P.per_token_losses(1_000_000, seed=5)
    first = x.float().sum()
    assert all(torch.equal(first, x.float().sum()) for _ in range(5))
    forward = P.sequential_sum(x, "float32")[-1]
    backward = P.sequential_sum(x.flip(0), "float32")[-1]
    assert forward != backward  # same numbers, other order: other float32 total
    ref = math.fsum(x.float().double().tolist())
    assert abs(float(first) - ref) / ref < 1e-7 < abs(forward - ref) / ref
    assert (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3)


def test_compare_devices_on_cpu():
    out = P.compare_devices("cpu", 100_000)
    assert out["sum_rel_diff"] == 0.0 and out["sum_cpu_rel_err"] < 1e-6
    with pytest.raises(ValueError):
        P.compare_devices("cuda:7" if not torch.cuda.is_available() else "cuda:99")


def test_inputs_are_checked():
    with pytest.raises(ValueError):
        P.per_token_losses(0)
    with pytest.raises(ValueError):
        P.torch_reduce(torch.ones(3), "median")
    with pytest.raises(ValueError):
        P.sequential_sum(torch.ones(2, 2, dtype=torch.float64), "float16")
    assert P.relative_error(float("inf"), 1.0) == np.inf


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("bfloat16", 2**-7), ("float16", 2**-10)])
def test_cpu_and_cuda_agree_within_tolerance(dtype, tol):
    n = 1_000_000 if dtype != "float16" else 10_000
    out = P.compare_devices("cuda:0", n, dtype=dtype)
    for reduction in P.PRECISION_REDUCTIONS:
        assert out[f"{reduction}_rel_diff"] <= tol
        assert out[f"{reduction}_device_rel_err"] <= 2 * tol


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_lossviz_reduction_agrees_on_cpu_and_cuda():
    import lossviz as lv

    mask = lv.mask_from_lengths([3, 50, 700, 4096]).double()
    losses = P.per_token_losses(mask.numel(), seed=2).reshape(mask.shape).float() * mask.float()
    names = ["sum", "token_mean", "sample_mean", "seq_mean_token_sum", "constant_norm"]
    for name in [*names, "padded_mean", "token_sum_norm"]:
        cpu = lv.reduce(losses, mask.float(), name)
        gpu = lv.reduce(losses.cuda(), mask.float().cuda(), name).cpu()
        torch.testing.assert_close(gpu, cpu, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    ("value", "dtype", "want"),
    [(1e-40, "float32", 2.0**-149), (1e-6, "float16", 2.0**-24), (1e-40, "bfloat16", 2.0**-133)],
)
def test_spacing_of_a_subnormal_is_the_smallest_step(value, dtype, want):
    assert P.spacing(value, dtype) == want


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_spacing_is_the_distance_to_the_next_number_from_subnormal_to_large(dtype):
    """Against torch.nextafter (and numpy.spacing where NumPy has the dtype), on numbers of
    ``dtype`` from its smallest subnormal up: the distance to the next larger one."""

    dt = P.DTYPES[dtype]
    tiny, top = math.log2(torch.finfo(dt).tiny), math.log2(torch.finfo(dt).max)
    gen = torch.Generator().manual_seed(0)
    exps = torch.empty(300, dtype=torch.float64).uniform_(tiny - 20, top - 1, generator=gen)
    xs = (2.0**exps).to(dt)  # numbers of dtype, many of them subnormal
    xs = xs[xs > 0]
    nxt = torch.nextafter(xs, torch.full_like(xs, float("inf")))
    for x, n in zip(xs.tolist(), (nxt.double() - xs.double()).tolist(), strict=True):
        assert P.spacing(x, dtype) == n, x
        if dtype != "bfloat16":
            np_dt = {"float32": np.float32, "float16": np.float16}[dtype]
            assert P.spacing(x, dtype) == float(np.spacing(np_dt(x)))
