"""The numbers notebooks 02 and 02b state, recomputed through the package (02c's are in test_step_size)."""

import pytest
import torch
import torch.nn.functional as F

import lossviz as lv
from lossviz.model import TinyCausalLM


@pytest.fixture(scope="module")
def setup():
    """The notebooks' model and three samples (lengths 5, 9, 3), drawn from the same seeded generator."""
    model = TinyCausalLM()
    gen = lv.seed_all(0)
    seqs = [torch.randint(1, 64, (n,), generator=gen).tolist() for n in (5, 9, 3)]
    return model, gen, seqs


def test_weights_of_token_mean_and_padded_mean_on_the_wide_batch():
    wide = lv.mask_from_lengths([2, 4], pad_to_multiple_of=8)
    assert wide.shape == (2, 8)
    assert torch.allclose(lv.weights(wide, "token_mean"), wide / 6)
    assert torch.allclose(lv.weights(wide, "padded_mean"), wide / 16)
    losses = F.pad(torch.tensor([[1.0, 3.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]), (0, 4))
    assert (lv.weights(wide, "padded_mean") * losses).sum().item() == pytest.approx(0.5)


def test_labels_without_minus_100_on_the_pads_train_24_positions_instead_of_14(setup):
    _, _, seqs = setup
    batch = lv.pad(seqs, "right")
    assert tuple(batch.input_ids.shape) == (3, 9)
    blog = lv.shift_labels(batch.input_ids.clone())
    fixed = lv.shift_labels(batch.input_ids.masked_fill(batch.attention_mask == 0, -100))
    assert int((blog != -100).sum()) == 24 == 3 * (9 - 1)
    assert int((fixed != -100).sum()) == 14 == int(batch.loss_mask().sum())


def test_twice_the_tokens_gives_n_14_then_31_and_the_gradient_ratio_is_n(setup):
    model, _, _ = setup
    gen = lv.seed_all(0)
    for n in (5, 9, 3):  # the notebook draws its three samples first
        torch.randint(1, 64, (n,), generator=gen)
    found = {}
    for lengths in ([5, 9, 3], [10, 18, 6]):
        b = lv.pad([torch.randint(1, 64, (n,), generator=gen).tolist() for n in lengths])
        out = model(b.input_ids, b.position_ids, b.sample_ids)
        n_tok = int(b.loss_mask().sum())
        grads = [
            torch.autograd.grad(
                lv.cross_entropy(out, b.labels, r, shift=True), model.head.weight, retain_graph=True
            )[0]
            for r in ("sum", "mean")
        ]
        ratio = (grads[0].norm() / grads[1].norm()).item()
        assert ratio == pytest.approx(n_tok, rel=1e-4)  # float32 rounding, ~1e-6 relative
        found[sum(lengths)] = n_tok
    assert found == {17: 14, 34: 31}  # each sample trains its length minus one: 34 - 3 = 31


def test_layouts_give_the_same_token_losses_and_packing_needs_its_ids(setup):
    model, _, seqs = setup

    def per_sample(batch, use_ids=True):
        ids = (batch.position_ids, batch.sample_ids) if use_ids else ()
        with torch.no_grad():
            losses = lv.token_losses(model(batch.input_ids, *ids), batch.labels, shift=True)
        owner = batch.loss_sample_ids()
        return [losses[owner == s] for s in range(len(seqs))]

    layouts = {
        "right": lv.pad(seqs, "right"),
        "left": lv.pad(seqs, "left"),
        "packed": lv.pack(seqs, 20),
    }
    found = {k: per_sample(b) for k, b in layouts.items()}
    gap = max((found[k][s] - found["right"][s]).abs().max().item() for k in found for s in range(3))
    assert gap < 1e-5 and [len(x) for x in found["packed"]] == [4, 8, 2]
    naive = per_sample(layouts["packed"], use_ids=False)
    assert torch.allclose(
        naive[0], found["packed"][0], atol=1e-5
    )  # first in the row: nothing before it
    for s in (1, 2):
        assert (naive[s] - found["packed"][s]).abs().max().item() > 1e-3
