import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz as lv
from lossviz.experiments.tasks import (
    BOS,
    COPY,
    EOS,
    FIRST_SYMBOL,
    PAD,
    REVERSE,
    SEP,
    Bucket,
    Example,
    TaskConfig,
    balanced_examples,
    collate,
    exact_match,
    make_example,
    sample_examples,
    to_text,
)


def test_exact_match_hand_checked_cases():
    target = (7, 8, EOS)
    assert exact_match([7, 8, EOS], target)
    assert exact_match([7, 8, EOS, 9, 9], target)  # what follows the first EOS is ignored
    assert not exact_match([7, 8, 9, EOS], target)  # one token too many
    assert not exact_match([7, EOS], target)  # stopped early
    assert not exact_match([7, 8], target)  # never stopped
    assert not exact_match([8, 7, EOS], target)  # right tokens, wrong order
    assert exact_match([EOS], (EOS,))


def test_reverse_example_by_hand():
    rng = random.Random(0)
    cfg = TaskConfig(buckets=(Bucket("b", (3, 3), (2, 2), 1.0),))
    e = make_example(rng, cfg)
    assert e.prompt[0] == BOS and e.prompt[-1] == SEP and e.prompt[3] == REVERSE
    x = e.prompt[4:-1]
    assert len(x) == 3 and e.response == (*x[::-1], EOS)
    copy = make_example(random.Random(0), TaskConfig(buckets=cfg.buckets, ops=("copy",)))
    assert copy.prompt[3] == COPY and copy.response == (*copy.prompt[4:-1], EOS)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_examples_respect_their_bucket(seed):
    cfg = TaskConfig()
    for e in sample_examples(20, seed, cfg):
        bucket = next(b for b in cfg.buckets if b.name == e.bucket)
        k = len(e.response) - 1
        assert bucket.answer[0] <= k <= bucket.answer[1]
        assert len(e.prompt) - 3 - k in range(bucket.context[0], bucket.context[1] + 1)
        assert all(FIRST_SYMBOL <= t < cfg.vocab_size for t in e.response[:-1])
        assert len(e.prompt) <= cfg.max_prompt


def test_same_seed_same_examples_and_balanced_buckets():
    assert sample_examples(30, 5) == sample_examples(30, 5)
    assert sample_examples(30, 5) != sample_examples(30, 6)
    held = balanced_examples(4, 1)
    assert [e.bucket for e in held] == ["short"] * 4 + ["medium"] * 4 + ["long"] * 4


def test_collate_layout_and_mask_by_hand():
    a = Example((BOS, 9, REVERSE, 6, 7, SEP), (7, 6, EOS), "x", "reverse")
    b = Example((BOS, REVERSE, 8, SEP), (8, EOS), "x", "reverse")
    ids, labels, mask, sids = collate([a, b], prompt_weight=0.25, prompt_length=7)
    assert ids.tolist() == [
        [PAD, BOS, 9, REVERSE, 6, 7, SEP, 7, 6, EOS],
        [PAD, PAD, PAD, BOS, REVERSE, 8, SEP, 8, EOS, PAD],
    ]
    assert sids.tolist()[1] == [-1, -1, -1, 0, 0, 0, 0, 0, 0, -1]
    assert labels.tolist()[1] == [-100, -100, -100, -100, REVERSE, 8, SEP, 8, EOS, -100]
    # position t weighs the prediction of token t+1: prompt tokens 0.25, answer tokens 1
    assert mask.tolist()[0] == [0, 0.25, 0.25, 0.25, 0.25, 0.25, 1, 1, 1, 0]
    assert mask.tolist()[1] == [0, 0, 0, 0.25, 0.25, 0.25, 1, 1, 0, 0]
    shifted = lv.shift_labels(labels)
    assert bool(((mask > 0) <= (shifted != -100)).all())  # no weight on an ignored label


def test_collate_and_task_errors():
    with pytest.raises(ValueError, match="at least one"):
        collate([])
    e = Example((BOS, REVERSE, 8, SEP), (8, EOS), "x", "reverse")
    with pytest.raises(ValueError, match="prompt_weight"):
        collate([e], prompt_weight=1.5)
    with pytest.raises(ValueError, match="shorter"):
        collate([e], prompt_length=2)
    with pytest.raises(ValueError, match="vocab_size"):
        TaskConfig(vocab_size=5)
    with pytest.raises(ValueError, match="ops"):
        TaskConfig(ops=("sort",))
    with pytest.raises(ValueError, match="bucket"):
        TaskConfig(buckets=(Bucket("bad", (0, 2), (0, 0), 1.0),))


def test_collate_feeds_the_model_and_reduction():
    examples = sample_examples(6, 3)
    ids, labels, mask, sids = collate(examples, prompt_length=TaskConfig().max_prompt)
    with torch.no_grad():
        losses = lv.token_losses(lv_model()(ids, sample_ids=sids), labels, shift=True)
    assert losses.shape == ids.shape
    n_answer = sum(len(e.response) for e in examples)
    assert float(mask.sum()) == n_answer
    assert float(lv.reduce(losses, mask, "sum")) == pytest.approx(float((losses * mask).sum()))
    assert torch.isfinite(losses).all()


def lv_model():
    from lossviz.model import TinyCausalLM, TinyConfig

    cfg = TaskConfig()
    return TinyCausalLM(TinyConfig(vocab_size=cfg.vocab_size, context_length=cfg.max_length))


def test_to_text_by_hand():
    assert to_text([BOS, 9, REVERSE, 6, 7, SEP, 7, 6, EOS, PAD]) == "<s> d REV a b | b a </s> ·"
    assert to_text([COPY, FIRST_SYMBOL + 30]) == "COPY s36"
