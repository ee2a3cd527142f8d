"""lossviz.evaluation: evaluation-token weights and the evaluation loss under each weighting."""

import math

import pytest
import torch

from lossviz import evaluation as ev


def test_eval_weights_by_hand():
    w = ev.eval_weights([2, 30, 3], weighting="token")
    assert torch.allclose(w, torch.full((3,), 1 / 35, dtype=torch.float64))
    w = ev.eval_weights([2, 30, 3], weighting="batch")
    assert torch.allclose(w, torch.tensor([1 / 6, 1 / 90, 1 / 9], dtype=torch.float64))
    w = ev.eval_weights([2, 30, 3], weighting="sample", sizes=[2, 2, 1])
    assert torch.allclose(w, torch.tensor([2 / 10, 2 / 150, 1 / 15], dtype=torch.float64))
    for weighting in ev.EVAL_WEIGHTINGS:  # every weighting is a mean: total weight 1
        total = ev.eval_weights([2, 30, 3], weighting=weighting, sizes=[2, 2, 1]) * torch.tensor(
            [2.0, 30.0, 3.0], dtype=torch.float64
        )
        assert float(total.sum()) == pytest.approx(1.0, abs=1e-15)


def test_eval_loss_token_weighting_is_the_mean_over_every_token():
    batches = [torch.tensor([1.0, 3.0]), torch.tensor([2.0] * 6), torch.tensor([10.0])]
    assert ev.eval_loss(batches) == pytest.approx(26 / 9)
    assert ev.eval_loss(batches, weighting="batch") == pytest.approx((2 + 2 + 10) / 3)
    assert math.exp(ev.eval_loss(batches)) == pytest.approx(math.exp(26 / 9))


def test_eval_inputs_that_have_no_answer_are_refused():
    with pytest.raises(ValueError, match="weighting must be one of"):
        ev.eval_weights([2], weighting="mean")
    with pytest.raises(ValueError, match="needs sizes"):
        ev.eval_weights([2], weighting="sample")
    with pytest.raises(ValueError, match="sizes has 1 batches but counts has 2"):
        ev.eval_weights([2, 3], weighting="sample", sizes=[1])
    with pytest.raises(ValueError, match="counts\\[1\\]"):
        ev.eval_weights([2, 0])
    with pytest.raises(ValueError, match="empty"):
        ev.eval_weights([])
    with pytest.raises(ValueError, match="NaN or infinite"):
        ev.eval_loss([torch.tensor([1.0, float("nan")])])
