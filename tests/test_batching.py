"""lossviz.batching: masks from lengths, packing, and model-ready batches."""

import pytest
import torch

import lossviz as lv
from lossviz.model import TinyCausalLM, TinyConfig


def test_mask_from_lengths_right_left_and_multiple():
    right = lv.mask_from_lengths([3, 7, 20])
    assert right.shape == (3, 20) and right.sum(dim=1).tolist() == [3, 7, 20]
    assert right[0, :3].tolist() == [1, 1, 1] and right[0, 3:].sum() == 0
    left = lv.mask_from_lengths([2, 4], padding="left")
    assert left.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert lv.mask_from_lengths([5, 3], pad_to_multiple_of=8).shape == (2, 8)


@pytest.mark.parametrize(
    ("lengths", "kwargs", "words"),
    [
        ([], {}, "empty"),
        ([0, 0], {}, "every length is 0"),
        ([3, -1], {}, r"lengths\[1\]"),
        ([3, 2.5], {}, r"lengths\[1\]"),
        (5, {}, "list of integers"),
        ([3], {"padding": "middle"}, "padding must be"),
        ([3], {"pad_to_multiple_of": 0}, "pad_to_multiple_of"),
    ],
)
def test_mask_from_lengths_errors(lengths, kwargs, words):
    with pytest.raises((ValueError, TypeError), match=words):
        lv.mask_from_lengths(lengths, **kwargs)


def test_pack_lengths_ignores_the_first_label_of_each_piece():
    mask, ids = lv.batching.pack_lengths([2, 3, 4], row_length=8)
    assert mask.tolist() == [[0, 1, 1, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 0, 0, 0]]
    assert ids.tolist() == [[0, 0, 0, 1, 1, 1, 1, -1], [2, 2, 2, 2, 2, -1, -1, -1]]
    with pytest.raises(ValueError, match="row_length"):
        lv.batching.pack_lengths([9], row_length=8)


def test_pad_and_pack_train_len_minus_one_tokens_per_sequence():
    seqs = [[5, 6, 7], [8, 9, 10, 11, 12], [13]]
    for batch in [lv.pad(seqs), lv.pad(seqs, "left"), lv.pad(seqs, pad_to_multiple_of=8)]:
        counts = [int((batch.loss_sample_ids() == i).sum()) for i in range(3)]
        assert counts == [2, 4, 0]
    packed = lv.pack(seqs, row_length=6)
    assert packed.input_ids.shape == (2, 6)
    assert [int((packed.loss_sample_ids() == i).sum()) for i in range(3)] == [2, 4, 0]
    assert packed.position_ids[0].tolist() == [0, 1, 2, 0, 0, 0]
    # no position predicts the first token of the next piece
    shifted = lv.shift_labels(packed.labels)
    assert shifted[0, 2] == -100


def test_padded_and_packed_give_the_same_per_token_losses():
    model = TinyCausalLM(TinyConfig(vocab_size=32, seed=3))
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 32, (n,), generator=gen).tolist() for n in [4, 9, 2, 6]]
    per_sample = []
    for batch in [lv.pad(seqs), lv.pad(seqs, "left"), lv.pack(seqs, row_length=12)]:
        logits = model(batch.input_ids, batch.position_ids, batch.sample_ids)
        losses = lv.token_losses(logits, batch.labels, shift=True)
        ids = batch.loss_sample_ids()
        per_sample.append([losses[ids == i] for i in range(len(seqs))])
    for layout in per_sample[1:]:
        for a, b in zip(per_sample[0], layout, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_model_is_fixed_by_its_config():
    a, b = TinyCausalLM(TinyConfig(seed=7)), TinyCausalLM(TinyConfig(seed=7))
    ids = torch.randint(0, 64, (2, 5))
    torch.testing.assert_close(a(ids), b(ids))
    assert a(ids).shape == (2, 5, 64)
    with pytest.raises(ValueError, match="divisible"):
        TinyCausalLM(TinyConfig(d_model=30, n_heads=4))


def test_lay_out_places_each_samples_tokens_in_order():
    right, left = lv.batching.lay_out([2, 3], "right"), lv.batching.lay_out([2, 3], "left")
    assert right.token.tolist() == [[0, 1, 0], [0, 1, 2]]
    assert left.token.tolist() == [[0, 0, 1], [0, 1, 2]]
    assert left.sample_ids.tolist() == [[-1, 0, 0], [1, 1, 1]]
    packed = lv.batching.lay_out([2, 3], "packed")  # rows of 2 * (3 + 1) = 8 positions
    assert packed.mask.tolist() == [[0, 1, 1, 0, 1, 1, 1, 0]]
    assert packed.sample_ids.tolist() == [[0, 0, 0, 1, 1, 1, 1, -1]]
    assert packed.token.tolist() == [[0, 0, 1, 0, 0, 1, 2, 0]]
    assert lv.batching.lay_out([2, 3], "packed", 16).mask.shape == (1, 16)
    with pytest.raises(ValueError, match="layout must be one of"):
        lv.batching.lay_out([2], "diagonal")


def test_every_layout_gives_a_sample_the_same_token_losses():
    """l[b, t] = CE(logits[s, j], labels[s, j]): the layout moves losses, it never changes them."""
    logits, labels = lv.batching.sample_logits(3, 5, 7, seed=1)
    assert logits.shape == (3, 5, 7) and labels.shape == (3, 5) and int(labels.max()) < 7
    again, _ = lv.batching.sample_logits(3, 5, 7, seed=1)
    assert torch.equal(logits, again)
    by_hand = torch.nn.functional.cross_entropy(logits[2, 3], labels[2, 3])
    per_layout = {}
    for layout in lv.batching.BATCH_LAYOUTS:
        laid = lv.batching.lay_out([4, 1, 5], layout, 4)
        losses = lv.batching.laid_out_token_losses(laid, logits, labels)
        assert float(losses[laid.mask == 0].abs().sum()) == 0.0
        sample_2 = (laid.sample_ids == 2) & (laid.mask > 0)
        per_layout[layout] = losses[sample_2]
        assert float(losses[sample_2][3]) == pytest.approx(float(by_hand), rel=1e-6)
    assert torch.equal(per_layout["right"], per_layout["left"])
    assert torch.equal(per_layout["right"], per_layout["packed"])


def test_too_few_logits_are_explained():
    logits, labels = lv.batching.sample_logits(2, 3, 5)
    with pytest.raises(ValueError, match="draw them with sample_logits"):
        lv.batching.laid_out_token_losses(lv.batching.lay_out([2, 4]), logits, labels)
    with pytest.raises(ValueError, match="num_samples"):
        lv.batching.sample_logits(0, 3, 5)
