"""GA and DDP as one weight matrix: the split, the three normalizations, and their invariants."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz as lv
from lossviz.accumulation import micro_batch_weights

lengths_st = st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=12).filter(
    lambda xs: max(xs) > 0
)


def test_split_deals_like_distributed_sampler_then_consecutive_micro_batches():
    assert lv.step_shape.deal(5, ga_steps=2, world_size=2) == [[[0, 2], [4]], [[1], [3]]]
    assert lv.step_shape.deal(5, ga_steps=2) == [[[0, 1, 2], [3, 4]]]
    # fewer samples than micro-batches: the last ones are empty (the loop still runs G steps)
    assert lv.step_shape.deal(3, ga_steps=4) == [[[0], [1], [2], []]]


@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 4))
def test_split_places_every_sample_once_on_rank_i_mod_r(B, G, R):
    if B < R:
        with pytest.raises(ValueError, match="one per rank"):
            lv.step_shape.deal(B, ga_steps=G, world_size=R)
        return
    plan = lv.step_shape.deal(B, ga_steps=G, world_size=R)
    assert len(plan) == R and all(len(rank) == G for rank in plan)
    seen = sorted(i for rank in plan for mb in rank for i in mb)
    assert seen == list(range(B))
    for r, rank in enumerate(plan):
        assert all(i % R == r for mb in rank for i in mb)
        sizes = [len(mb) for mb in rank]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
        flat = [i for mb in rank for i in mb]
        assert flat == sorted(flat)  # consecutive micro-batches keep the loader's order


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ga_steps": 0}, "ga_steps"),
        ({"ga_steps": 2, "world_size": 0}, "world_size"),
        ({"ga_steps": 1, "world_size": 5}, "one per rank"),
        ({"ga_steps": True}, "ga_steps"),
    ],
)
def test_impossible_splits_raise_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lv.accumulation_weights(lv.mask_from_lengths([3, 4, 5]), **kwargs)


def test_unknown_normalization_lists_the_choices():
    with pytest.raises(ValueError, match="naive"):
        lv.accumulation_weights(lv.mask_from_lengths([3]), ga_steps=1, normalize="mean")


def test_ga_notebook_example_lengths_4_and_3_by_hand():
    m = lv.mask_from_lengths([4, 3])
    naive = lv.accumulation_weights(m, ga_steps=2, normalize="naive")
    glob = lv.accumulation_weights(m, ga_steps=2, normalize="global")
    # ((l11+..+l14)/4 + (l21+l22+l23)/3)/2  vs  (l11+..+l23)/7
    assert torch.allclose(naive[0, :4], torch.full((4,), 1 / 8))
    assert torch.allclose(naive[1, :3], torch.full((3,), 1 / 6))
    assert torch.allclose(glob[m > 0], torch.full((7,), 1 / 7))
    assert naive[1, 3] == 0 and glob[1, 3] == 0


def test_sum_is_each_micro_batch_summed_over_g_and_r():
    m = lv.mask_from_lengths([4, 3, 9, 1])
    W = lv.accumulation_weights(m, ga_steps=2, world_size=2, normalize="sum")
    assert torch.allclose(W, m / 4)


def test_ddp_weights_ranks_equally_under_naive():
    # rank 0 holds 1 token, rank 1 holds 9: naive gives each rank half the step (issue 34242)
    m = lv.mask_from_lengths([1, 9])
    W = lv.accumulation_weights(m, ga_steps=1, world_size=2, normalize="naive")
    assert torch.allclose(W.sum(1), torch.tensor([0.5, 0.5]))
    W = lv.accumulation_weights(m, ga_steps=1, world_size=2, normalize="global")
    assert torch.allclose(W.sum(1), torch.tensor([0.1, 0.9]))


GA_REDUCTIONS = ["token_mean", "sample_mean", "seq_mean_token_sum", "sum", "padded_mean"]


@settings(max_examples=150, deadline=None)
@given(lengths_st, st.integers(1, 5), st.integers(1, 3), st.sampled_from(GA_REDUCTIONS))
def test_global_equals_the_full_batch_for_any_lengths_and_split(lengths, G, R, reduction):
    if len(lengths) < R:
        return
    m = lv.mask_from_lengths(lengths)
    W = lv.accumulation_weights(
        m, ga_steps=G, world_size=R, reduction=reduction, normalize="global"
    )
    full = lv.weights(m, reduction)
    assert torch.allclose(W, full, rtol=1e-6, atol=0)
    assert W.shape == m.shape


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 40),
    st.randoms(use_true_random=False),
)
def test_naive_equals_global_when_every_micro_batch_holds_the_same_tokens(G, R, mbs, n, rnd):
    # build each micro-batch from `mbs` samples whose lengths sum to the same n * mbs
    B = G * R * mbs
    lengths = [0] * B
    plan = lv.step_shape.deal(B, ga_steps=G, world_size=R)
    for rank in plan:
        for mb in rank:
            cuts = sorted(rnd.randint(0, n * mbs) for _ in range(len(mb) - 1))
            parts = [b - a for a, b in zip([0, *cuts], [*cuts, n * mbs], strict=True)]
            for i, p in zip(mb, parts, strict=True):
                lengths[i] = p
    m = lv.mask_from_lengths(lengths)
    naive = lv.accumulation_weights(m, ga_steps=G, world_size=R, normalize="naive")
    glob = lv.accumulation_weights(m, ga_steps=G, world_size=R, normalize="global")
    assert torch.allclose(naive, glob, rtol=1e-5, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(lengths_st, st.integers(2, 4))
def test_naive_differs_when_micro_batches_hold_different_token_counts(lengths, G):
    m = lv.mask_from_lengths(lengths)
    plan = lv.step_shape.deal(len(lengths), ga_steps=G)
    counts = [sum(lengths[i] for i in mb) for mb in plan[0]]
    naive = lv.accumulation_weights(m, ga_steps=G, normalize="naive")
    if len(set(counts)) > 1 and min(counts) > 0:
        assert not torch.allclose(naive, lv.weights(m), rtol=1e-4)
    assert torch.isfinite(naive).all()


def test_empty_micro_batch_adds_zero_and_keeps_dividing_by_g():
    m = lv.mask_from_lengths([2, 0, 6])  # sample 1 trains no token: its micro-batch is 0/0
    W = lv.accumulation_weights(m, ga_steps=3, normalize="naive")
    assert torch.allclose(W.sum(1), torch.tensor([1 / 3, 0.0, 1 / 3]))


def test_micro_batch_weights_are_what_each_rank_backpropagates():
    m = lv.mask_from_lengths([4, 3, 9, 1, 5])
    plan = lv.step_shape.deal(5, ga_steps=2, world_size=2)
    local = micro_batch_weights(m, plan, normalize="global")
    # each rank scales by R because DDP divides the summed gradient by R
    total = sum(w.sum() for rank in local for w in rank)
    assert torch.isclose(total, torch.tensor(2.0))
    assert [[w.shape[0] for w in rank] for rank in local] == [[2, 1], [1, 1]]


def test_sample_mean_naive_equals_global_when_micro_batches_hold_equal_sample_counts():
    m = lv.mask_from_lengths([3, 50, 7, 1, 9, 22])
    kw = {"ga_steps": 3, "reduction": "sample_mean"}
    naive = lv.accumulation_weights(m, normalize="naive", **kw)
    assert torch.allclose(naive, lv.weights(m, "sample_mean"))
    uneven = lv.accumulation_weights(m[:5], normalize="naive", **kw)  # sizes 2, 2, 1
    assert not torch.allclose(uneven, lv.weights(m[:5], "sample_mean"))


def test_trainer_normalizations_local_and_unscaled():
    from lossviz.accumulation import plan_weights

    mask = lv.mask_from_lengths([12, 40, 7, 300, 5, 9, 30, 2])
    split = {"ga_steps": 4, "world_size": 2}
    naive = lv.accumulation_weights(mask, normalize="naive", **split)
    # each micro-batch's own mean without / G: G times the naive weights
    unscaled = lv.accumulation_weights(mask, normalize="unscaled", **split)
    assert torch.allclose(unscaled, 4 * naive)
    # local: rank 0 holds samples 0, 2, 4, 6 (54 tokens), rank 1 the rest (351); DDP halves both
    local = lv.accumulation_weights(mask, normalize="local", **split)
    assert torch.allclose(
        local.sum(1), torch.tensor([12, 40, 7, 300, 5, 9, 30, 2]) / 2 / torch.tensor([54, 351] * 4)
    )
    one_rank = {"ga_steps": 4, "world_size": 1}
    assert torch.allclose(
        lv.accumulation_weights(mask, normalize="local", **one_rank),
        lv.accumulation_weights(mask, normalize="global", **one_rank),
    )
    plan = lv.step_shape.deal(8, **split)
    assert torch.equal(plan_weights(mask, plan, normalize="naive"), naive)
    with pytest.raises(ValueError, match="exactly once"):
        plan_weights(mask, [[[0, 1]], [[2]]])


def test_group_by_deals_samples_in_the_order_of_their_keys():
    assert lv.step_shape.deal(4, ga_steps=2, group_by=[9, 2, 7, 1]) == [[[3, 1], [2, 0]]]
    # a stable sort: equal keys keep their order; tuples sort by the first length, then the next
    assert lv.step_shape.deal(4, ga_steps=2, group_by=[(3, 1), (1, 5), (3, 0), (1, 5)]) == [
        [[1, 3], [2, 0]]
    ]
    # with ranks, the sorted order (10, 20, 30, 40 = samples 1, 3, 2, 0) is dealt round-robin
    assert lv.step_shape.deal(4, ga_steps=1, world_size=2, group_by=[40, 10, 30, 20]) == [
        [[1, 2]],
        [[3, 0]],
    ]
    with pytest.raises(ValueError, match="one key per sample"):
        lv.step_shape.deal(4, ga_steps=2, group_by=[1, 2])


def test_grouped_naive_accumulation_weighs_short_micro_batches_up():
    lengths = [30, 2, 28, 3]
    mask = lv.mask_from_lengths(lengths)
    W = lv.accumulation_weights(mask, ga_steps=2, normalize="naive", group_by=lengths)
    # the two short samples share a micro-batch: each of their 5 tokens weighs 1/(5*2)
    assert W.sum(1).tolist() == pytest.approx([30 / 116, 2 / 10, 28 / 116, 3 / 10])
    grouped_global = lv.accumulation_weights(mask, ga_steps=2, group_by=lengths)
    assert torch.allclose(grouped_global, lv.weights(mask, "token_mean"))
