"""The claims notebooks 01-03 make about their sources, checked outside the notebooks.

The sources: chunhuizhang's notebook tutorials/hf/ga.ipynb (https://github.com/chunhuizhang/llm_rl);
the blog post "深入解析 Loss 减少方式：mean 和 sum 的区别" on open-instruct's reduce_loss (2024-12-03);
Jun's post "Loss Reduction" (https://rich-junwang.github.io/en-us/posts/tech/ml/loss/loss_reduction/).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossviz as lv
from lossviz.model import TinyCausalLM

GA_NOTEBOOK_LOGITS = [[2.0, 0.5, 1.0], [0.1, 1.0, 0.3], [0.5, 1.2, 0.3], [0.98, 0.6, 0.17]]
GA_NOTEBOOK_TARGET = [0, 2, 1, 1]


def test_ga_notebook_digits_and_the_rounded_probability_gap():
    logits = torch.tensor(GA_NOTEBOOK_LOGITS, dtype=torch.float64)
    target = torch.tensor(GA_NOTEBOOK_TARGET)
    picked = -lv.token_losses(logits, target)
    assert picked.numpy().round(4).tolist() == [-0.4644, -1.3435, -0.6435, -1.1355]
    assert round(float(-picked.sum()), 4) == 3.5869
    rounded = logits.softmax(-1).gather(1, target[:, None]).squeeze(1).numpy().round(4)
    assert -np.log(rounded).sum() == pytest.approx(3.587012752382311, abs=1e-12)
    assert round(float(-np.log(rounded).sum()), 4) != 3.5869


def test_mean_vs_sum_post_token_mean_is_not_equal_contribution():
    mask = lv.mask_from_lengths([10, 50])
    losses = mask * 0.5
    assert lv.reduce(losses, mask, "token_mean").item() == pytest.approx(0.5)
    assert lv.reduce(losses, mask, "sum").item() == pytest.approx(30.0)
    assert lv.sample_weights(mask, "token_mean").tolist() == pytest.approx([1 / 6, 5 / 6])
    assert lv.sample_weights(mask, "sample_mean").tolist() == pytest.approx([1 / 2, 1 / 2])
    losses[0] *= 2  # A at 1.0 per token: the two means part
    assert lv.reduce(losses, mask, "token_mean").item() == pytest.approx(35 / 60)
    assert lv.reduce(losses, mask, "sample_mean").item() == pytest.approx(0.75)


def test_mean_vs_sum_post_sum_and_mean_of_a_reduced_loss_change_nothing():
    model = TinyCausalLM()
    batch = lv.pad([[3, 9, 4, 1], [7, 2]])

    def grad(op):
        model.zero_grad()
        logits = model(batch.input_ids, batch.position_ids, batch.sample_ids)
        op(lv.cross_entropy(logits, batch.labels, "mean", shift=True)).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    base = grad(lambda x: x)
    assert torch.equal(grad(lambda x: x.sum()), base) and torch.equal(
        grad(lambda x: x.mean()), base
    )


def test_sum_gradient_is_n_times_the_mean_gradient():
    logits = torch.randn(2, 6, 11, generator=torch.Generator().manual_seed(1), requires_grad=True)
    labels = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(2))
    labels[1, 3:] = -100
    g_sum = torch.autograd.grad(
        F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum"), logits
    )[0]
    g_mean = torch.autograd.grad(F.cross_entropy(logits.flatten(0, 1), labels.flatten()), logits)[0]
    assert torch.allclose(g_sum, 9 * g_mean, atol=1e-6)


def test_loss_reduction_post_pooled_formula_has_a_stray_one_over_m():
    mask = lv.mask_from_lengths([4, 12, 30])
    losses = torch.rand(mask.shape, generator=torch.Generator().manual_seed(3)) * mask
    m, n, loss_i = 3, mask.sum(1), losses.sum(1)
    assert torch.isclose((loss_i / n).sum() / m, lv.reduce(losses, mask, "sample_mean"))
    post_pooled = loss_i.sum() / n.sum() / m
    assert torch.isclose(post_pooled * m, lv.reduce(losses, mask, "token_mean"))
    assert not math.isclose(float(post_pooled), float(lv.reduce(losses, mask, "token_mean")))


def test_padded_mean_halves_when_padding_doubles():
    losses = torch.tensor([[1.0, 3.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    mask = lv.mask_from_lengths([2, 4])
    wide = lv.mask_from_lengths([2, 4], pad_to_multiple_of=8)
    wide_losses = F.pad(losses, (0, 4))
    assert lv.reduce(losses, mask, "padded_mean").item() == 1.0
    assert lv.reduce(wide_losses, wide, "padded_mean").item() == 0.5
    assert lv.reduce(wide_losses, wide, "token_mean").item() == pytest.approx(8 / 6)
