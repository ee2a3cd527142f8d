"""lossviz.cross_entropy: equal to torch and transformers, clear errors, and the digits of the
gather example in chunhuizhang's notebook tutorials/hf/ga.ipynb (https://github.com/chunhuizhang/llm_rl)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz as lv

GA_NOTEBOOK_LOGITS = [[2.0, 0.5, 1.0], [0.1, 1.0, 0.3], [0.5, 1.2, 0.3], [0.98, 0.6, 0.17]]
GA_NOTEBOOK_TARGET = [0, 2, 1, 1]


def test_ga_notebook_gathered_log_probs_and_sum():
    logits = torch.tensor(GA_NOTEBOOK_LOGITS)
    target = torch.tensor(GA_NOTEBOOK_TARGET)
    picked = -lv.token_losses(logits, target)
    assert picked.tolist() == pytest.approx([-0.4644, -1.3435, -0.6435, -1.1355], abs=5e-5)
    total = lv.cross_entropy(logits, target, "sum")
    assert round(total.item(), 4) == 3.5869
    assert total.item() == pytest.approx(F.cross_entropy(logits, target, reduction="sum").item())


@st.composite
def batches(draw):
    """Random logits [B, T, V] (or [N, V]) and labels with a random ignore pattern."""
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    flat = draw(st.booleans())
    B, T, V = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, T, V, generator=gen) * 3).to(dtype)
    labels = torch.randint(0, V, (B, T), generator=gen)
    ignore = torch.rand(B, T, generator=gen) < draw(st.floats(0.0, 0.9))
    ignore.view(-1)[draw(st.integers(0, B * T - 1))] = False  # keep one trained token
    labels = labels.masked_fill(ignore, -100)
    if flat:
        logits, labels = logits.reshape(B * T, V), labels.reshape(B * T)
    return logits, labels


@settings(max_examples=60, deadline=None)
@given(batches(), st.sampled_from(["none", "sum", "mean"]))
def test_equals_torch_in_values_and_gradients(batch, reduction):
    logits, labels = batch
    ours_in = logits.clone().requires_grad_()
    ref_in = logits.clone().requires_grad_()
    ours = lv.cross_entropy(ours_in, labels, reduction)
    ref = F.cross_entropy(
        ref_in.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction=reduction
    )
    ref = ref.reshape(labels.shape) if reduction == "none" else ref
    tol = 1e-5 if logits.dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, ref, atol=tol, rtol=tol)
    seed = torch.randn(ours.shape, dtype=ours.dtype) if reduction == "none" else torch.ones(())
    (ours * seed).sum().backward()
    (ref * seed).sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, atol=tol, rtol=tol)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_shift_matches_transformers_for_causal_lm_loss(batch):
    loss_utils = pytest.importorskip("transformers.loss.loss_utils")
    logits, labels = batch
    if labels.dim() == 1:
        logits, labels = logits.unsqueeze(0), labels.unsqueeze(0)
    trained = lv.shift_labels(labels) != -100
    if not trained.any():
        labels = labels.clone()
        labels[0, -1] = 0
        trained = lv.shift_labels(labels) != -100
    if not trained.any():  # a single-position row has nothing to predict after the shift
        return
    V = logits.shape[-1]
    ref = loss_utils.ForCausalLMLoss(logits, labels, vocab_size=V)
    ours = lv.cross_entropy(logits, labels, "mean", shift=True)
    torch.testing.assert_close(ours.float(), ref, atol=1e-5, rtol=1e-5)
    n = int(trained.sum()) + 3  # a global count larger than the local one, as with GA
    ref_n = loss_utils.ForCausalLMLoss(logits, labels, vocab_size=V, num_items_in_batch=n)
    ours_n = lv.cross_entropy(logits, labels, "sum", shift=True) / n
    torch.testing.assert_close(ours_n.float(), ref_n, atol=1e-5, rtol=1e-5)


def test_shift_scores_position_t_on_token_t_plus_1():
    logits = torch.randn(1, 4, 5)
    labels = torch.tensor([[1, 2, 3, 4]])
    shifted = lv.token_losses(logits, labels, shift=True)
    direct = lv.token_losses(logits[:, :3], labels[:, 1:])
    torch.testing.assert_close(shifted[:, :3], direct)
    assert shifted[0, 3] == 0


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    labels = torch.tensor([[0, 3, -100], [2, -100, 1]])
    for reduction in ["none", "sum", "mean", "sample_mean", "constant_norm"]:
        assert torch.autograd.gradcheck(
            lambda x, r=reduction: lv.cross_entropy(x, labels, r), logits
        )


def test_ignored_tokens_get_zero_loss_and_zero_gradient():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    labels = torch.tensor([[0, -100, 1], [-100, -100, 3]])
    losses = lv.token_losses(logits, labels)
    assert losses[0, 1] == 0 and losses[1, 0] == 0
    losses.sum().backward()
    assert torch.all(logits.grad[labels == -100] == 0)


def test_other_reductions_accept_mask_and_params():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, generator=gen)
    labels = torch.tensor([[1, 2, -100, -100], [3, 4, 5, 0]])
    mask = torch.tensor([[0.1, 1.0, 1.0, 1.0], [0.1, 0.1, 1.0, 1.0]])
    losses = lv.token_losses(logits, labels)
    trained = (labels != -100).float() * mask
    got = lv.cross_entropy(logits, labels, "token_mean", mask=mask)
    torch.testing.assert_close(got, (trained * losses).sum() / trained.sum())
    got = lv.cross_entropy(logits, labels, "constant_norm", max_length=10)
    torch.testing.assert_close(got, ((labels != -100) * losses).sum() / 20)


@pytest.mark.parametrize(
    ("logits", "labels", "error", "words"),
    [
        (torch.randn(2, 3, 5), torch.zeros(2, 4, dtype=torch.long), ValueError, "do not match"),
        (torch.randn(2, 5), torch.tensor([1, 5]), ValueError, "out of range"),
        (torch.randn(2, 5), torch.tensor([1, -3]), ValueError, "ignore_index"),
        (torch.randn(2, 5), torch.tensor([1.0, 2.0]), TypeError, "labels.long()"),
        (torch.randint(0, 3, (2, 5)), torch.tensor([1, 2]), TypeError, "floating point"),
        (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), ValueError, "empty batch"),
        (torch.randn(5), torch.tensor(1), ValueError, "vocabulary dimension"),
        ([[1.0, 2.0]], torch.tensor([1]), TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_names_the_problem(logits, labels, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        lv.token_losses(logits, labels)


def test_non_finite_logits_say_where():
    logits = torch.randn(2, 3, 4)
    logits[1, 2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"index \(1, 2, 0\)"):
        lv.cross_entropy(logits, torch.zeros(2, 3, dtype=torch.long))


def test_unknown_reduction_lists_valid_ones():
    with pytest.raises(ValueError, match="sample_mean"):
        lv.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), "average")


def test_every_token_ignored_policy():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    labels = torch.full((2, 3), -100)
    assert torch.isnan(F.cross_entropy(logits.view(-1, 4), labels.view(-1)))  # torch's silent NaN
    for name in ["mean", "token_mean", "sample_mean", "seq_mean_token_sum"]:
        with pytest.raises(ValueError, match="every token is ignored"):
            lv.cross_entropy(logits, labels, name)
        zero = lv.cross_entropy(logits, labels, name, if_empty="zero")
        assert zero.item() == 0.0
    for name in ["sum", "constant_norm", "padded_mean"]:
        assert lv.cross_entropy(logits, labels, name).item() == 0.0
    lv.cross_entropy(logits, labels, "mean", if_empty="zero").backward()
    assert torch.all(logits.grad == 0)


def test_none_rejects_reduction_params():
    with pytest.raises(ValueError, match="reduction='none'"):
        lv.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), "none", max_length=3)
