"""Hypothesis property test of the public API over dtypes and sizes, past float16's 65,504.

Derandomized: CI starts without an example database, so every run draws the same examples, and a
failure reproduces anywhere. Each tolerance says which rounding it covers.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz as lv

FLOATS = [torch.float16, torch.bfloat16, torch.float32]
LABELS = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]
VOCAB = 6  # fits every label width; a small vocabulary keeps 70,000-token batches cheap


@st.composite
def batches(draw):
    dtype = draw(st.sampled_from(FLOATS))
    label_dtype = draw(st.sampled_from(LABELS))
    rows = draw(st.integers(1, 3))
    # a few tokens, or past 65,504 in total (float16's largest finite value)
    width = draw(st.one_of(st.integers(1, 40), st.integers(65_505 // rows + 1, 70_000 // rows + 1)))
    seed = draw(st.integers(0, 2**16))
    ignored = draw(st.floats(0.0, 0.9))
    gen = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(rows, width, VOCAB, generator=gen)).to(dtype)
    labels = torch.randint(0, VOCAB, (rows, width), generator=gen)
    keep = torch.rand(rows, width, generator=gen) >= ignored
    keep[0, 0] = True  # at least one trained token: a mean is defined
    return logits, labels, keep, label_dtype


def _tolerance(dtype: torch.dtype, logits: torch.Tensor, ref: float) -> float:
    # log-softmax runs in the logits' dtype: each token's loss carries a few roundings of numbers
    # up to max|logit| + log V; the mean of those errors is no larger than the largest one, and
    # the result is rounded once more to the dtype. 4 eps over that magnitude covers both.
    magnitude = float(logits.detach().abs().max().float()) + math.log(VOCAB) + abs(ref) + 1
    return 4 * torch.finfo(dtype).eps * magnitude


@settings(max_examples=24, deadline=None, derandomize=True)
@given(batches(), st.sampled_from(["mean", "sum", "sample_mean"]))
def test_cross_entropy_is_the_float64_loss_in_every_dtype(batch, reduction):
    logits, labels, keep, label_dtype = batch
    dtype = logits.dtype
    ignore = torch.where(keep, labels, -100)
    ref_losses = -torch.log_softmax(logits.double(), -1).gather(-1, labels.unsqueeze(-1))[..., 0]
    ref = float((lv.weights(keep.double(), reduction) * ref_losses).sum())

    def loss():  # uint8 cannot hold -100: its ignored tokens go through mask= instead
        if label_dtype == torch.uint8:
            return lv.cross_entropy(logits, labels.to(label_dtype), reduction, mask=keep.float())
        return lv.cross_entropy(logits, ignore.to(label_dtype), reduction)

    if abs(ref) > 0.99 * torch.finfo(dtype).max:  # a float16 sum past 65,504: inf, said aloud
        with pytest.warns(RuntimeWarning, match="does not fit"):
            assert math.isinf(float(loss()))
        return
    out = loss()
    assert out.dtype == dtype
    assert math.isfinite(float(out))
    assert abs(float(out) - ref) <= _tolerance(dtype, logits, ref)


@settings(max_examples=24, deadline=None, derandomize=True)
@given(batches(), st.sampled_from(["token_mean", "sample_mean", "seq_mean_token_sum"]))
def test_weights_and_shares_do_not_depend_on_the_mask_dtype(batch, reduction):
    logits, _, keep, _ = batch
    exact = lv.weights(keep.double(), reduction)
    low = lv.weights(keep.to(logits.dtype), reduction)
    assert low.dtype == torch.float32
    # float32 weights vs float64: relative rounding 2^-24 per entry, plus the count's rounding
    assert torch.allclose(low.double(), exact, rtol=1e-6, atol=0)
    shares = lv.sample_weights(keep.to(logits.dtype), reduction)
    # float32 shares of at most 3 samples sum to 1 within a few float32 roundings (2^-24 each)
    assert abs(float(shares.sum()) - 1) < 1e-6
