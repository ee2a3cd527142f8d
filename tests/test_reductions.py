"""lossviz.reductions: each W reproduces its reduction, and the invariants the notebooks rely on."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz as lv

CORE = ["sum", "token_mean", "sample_mean", "seq_mean_token_sum", "constant_norm", "padded_mean"]
lengths_st = st.lists(st.integers(0, 12), min_size=1, max_size=6).filter(lambda xs: max(xs) > 0)


def losses_like(mask, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(mask.shape, generator=gen, dtype=torch.float64) * 5 * (mask > 0)


def reference(losses, mask, name, max_length=None):
    """Each reduction written the long way, sample by sample, as the brief's table states it."""
    n = mask.sum(dim=1)
    per_sample = (mask * losses).sum(dim=1)
    nonempty = n > 0
    B, T = mask.shape
    if name == "sum":
        return per_sample.sum()
    if name == "token_mean":
        return per_sample.sum() / n.sum()
    if name == "sample_mean":
        return (per_sample[nonempty] / n[nonempty]).mean()
    if name == "seq_mean_token_sum":
        return per_sample[nonempty].mean()
    if name == "constant_norm":
        return per_sample.sum() / (B * (max_length or T))
    if name == "padded_mean":
        return per_sample.sum() / (B * T)
    raise AssertionError(name)


@settings(max_examples=80, deadline=None)
@given(lengths_st, st.sampled_from(CORE), st.sampled_from(["right", "left"]))
def test_weights_reproduce_each_reduction(lengths, name, padding):
    mask = lv.mask_from_lengths(lengths, padding).double()
    losses = losses_like(mask)
    got = lv.reduce(losses, mask, name)
    torch.testing.assert_close(got, (lv.weights(mask, name) * losses).sum())
    torch.testing.assert_close(got, reference(losses, mask, name))


@settings(max_examples=40, deadline=None)
@given(lengths_st, st.sampled_from(list(lv.REDUCTIONS)))
def test_every_registered_reduction_is_its_weight_matrix(lengths, name):
    mask = lv.mask_from_lengths(lengths).double()
    losses = losses_like(mask, seed=len(lengths))
    w = lv.weights(mask, name)
    assert w.shape == mask.shape and bool((w[mask == 0] == 0).all())
    torch.testing.assert_close(lv.reduce(losses, mask, name), (w * losses).sum())


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 10))
def test_token_mean_equals_sample_mean_for_equal_lengths(B, n):
    mask = lv.mask_from_lengths([n] * B)
    torch.testing.assert_close(lv.weights(mask, "token_mean"), lv.weights(mask, "sample_mean"))


@settings(max_examples=50, deadline=None)
@given(lengths_st)
def test_sum_is_n_times_token_mean_and_token_mean_weights_sum_to_one(lengths):
    mask = lv.mask_from_lengths(lengths).double()
    losses = losses_like(mask, seed=sum(lengths))
    N = mask.sum()
    torch.testing.assert_close(lv.reduce(losses, mask, "sum"), N * lv.reduce(losses, mask, "mean"))
    assert lv.weights(mask, "token_mean").sum().item() == pytest.approx(1.0)
    assert lv.weights(mask, "sample_mean").sum().item() == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(lengths_st, st.sampled_from(list(lv.REDUCTIONS)), st.randoms())
def test_permuting_samples_permutes_w(lengths, name, rnd):
    mask = lv.mask_from_lengths(lengths)
    order = list(range(len(lengths)))
    rnd.shuffle(order)
    torch.testing.assert_close(lv.weights(mask[order], name), lv.weights(mask, name)[order])


@settings(max_examples=40, deadline=None)
@given(lengths_st, st.sampled_from(["sum", "token_mean", "sample_mean", "seq_mean_token_sum"]))
def test_packed_rows_weigh_samples_like_padded_rows(lengths, name):
    padded = lv.sample_weights(lv.mask_from_lengths(lengths), name)
    mask, ids = lv.batching.pack_lengths(lengths, row_length=max(lengths) + 1 + 4)
    packed = lv.sample_weights(mask, name, sample_ids=ids)
    torch.testing.assert_close(packed, padded)


def test_sample_shares_token_mean_vs_sample_mean():
    mask = lv.mask_from_lengths([3, 7, 20])
    torch.testing.assert_close(lv.sample_weights(mask, "token_mean"), torch.tensor([3, 7, 20]) / 30)
    torch.testing.assert_close(lv.sample_weights(mask, "sample_mean"), torch.full((3,), 1 / 3))
    # a token of the short sample weighs N / (B * n_b) times a token under token mean
    ratio = lv.weights(mask, "sample_mean")[0, 0] / lv.weights(mask, "token_mean")[0, 0]
    assert ratio.item() == pytest.approx(30 / (3 * 3))


def test_mean_vs_sum_post_token_mean_and_sum():
    # sample A: 10 tokens with loss-sum 5; sample B: 50 tokens with loss-sum 25
    mask = lv.mask_from_lengths([10, 50])
    losses = torch.zeros(2, 50)
    losses[0, :10] = 0.5
    losses[1, :50] = 0.5
    assert lv.reduce(losses, mask, "mean").item() == pytest.approx(0.5)
    assert lv.reduce(losses, mask, "sum").item() == pytest.approx(30.0)
    shares = lv.sample_weights(mask, "token_mean")
    torch.testing.assert_close(shares, torch.tensor([1 / 6, 5 / 6]))  # not "equal"
    torch.testing.assert_close(lv.sample_weights(mask, "sample_mean"), torch.tensor([0.5, 0.5]))


def test_empty_samples_leave_the_sample_count():
    mask = lv.mask_from_lengths([4, 0, 2])
    w = lv.weights(mask, "sample_mean")
    torch.testing.assert_close(w.sum(dim=1), torch.tensor([0.5, 0.0, 0.5]))
    torch.testing.assert_close(lv.weights(mask, "seq_mean_token_sum")[0, 0], torch.tensor(0.5))
    # constant_norm and padded_mean keep all B rows in the denominator
    assert lv.weights(mask, "constant_norm")[0, 0].item() == pytest.approx(1 / (3 * 4))
    assert lv.weights(mask, "constant_norm", max_length=8)[0, 0].item() == pytest.approx(1 / 24)


def test_fractional_mask_is_a_weighted_mean():
    mask = torch.tensor([[0.1, 0.1, 1.0, 1.0]])
    losses = torch.tensor([[4.0, 4.0, 1.0, 3.0]])
    expected = (0.4 + 0.4 + 1.0 + 3.0) / 2.2
    assert lv.reduce(losses, mask, "weighted").item() == pytest.approx(expected)


def test_registry_names_aliases_and_new_reductions():
    assert set(CORE) <= set(lv.REDUCTIONS) and "mean" in lv.REDUCTIONS
    assert "mean" not in list(lv.REDUCTIONS)  # aliases resolve but are not listed twice
    assert lv.REDUCTIONS["mean"].name == "token_mean"
    with pytest.raises(ValueError, match="already taken"):
        lv.reductions.register("mean", "", "")(lambda mask, counts: mask)
    assert len(lv.reductions.reduction_table()) == len(lv.REDUCTIONS)


def test_bad_masks_and_params():
    with pytest.raises(ValueError, match="finite and >= 0"):
        lv.weights(torch.tensor([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="empty batch"):
        lv.weights(torch.zeros(0, 3))
    with pytest.raises(TypeError, match="max_length"):
        lv.weights(torch.ones(1, 3), "token_mean", max_length=4)
    with pytest.raises(ValueError, match="positive"):
        lv.weights(torch.ones(1, 3), "constant_norm", max_length=0)
    with pytest.raises(ValueError, match="same shape"):
        lv.reduce(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="if_empty"):
        lv.weights(torch.ones(1, 3), if_empty="nan")


def test_losses_by_reduction_is_each_reductions_sum_of_w_times_l():
    mask, ids = lv.batching.pack_lengths([3, 1, 4], 6)
    losses = losses_like(mask, seed=3)
    got = lv.reductions.losses_by_reduction(losses, mask, sample_ids=ids)
    assert list(got) == list(lv.REDUCTIONS)
    for name, value in got.items():
        w = lv.weights(mask, name, sample_ids=ids)
        assert value == pytest.approx(float((w * losses).sum()), rel=1e-12)
    assert got["sum"] == pytest.approx(float(losses.sum()), rel=1e-12)
    empty = lv.reductions.losses_by_reduction(torch.zeros(1, 3), torch.zeros(1, 3))
    assert empty["sum"] == 0.0 and empty["token_mean"] != empty["token_mean"]  # 0/0 is NaN


def _rst_rows(doc: str) -> list[list[str]]:
    """The rows of the first simple reST table in ``doc``; a line whose third cell is empty
    continues the row above."""
    import re

    lines = doc.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("====")]
    spans = [m.span() for m in re.finditer(r"=+", lines[rules[0]])]
    ends = [a for a, _ in spans[1:]] + [None]
    rows: list[list[str]] = []
    for line in lines[rules[1] + 1 : rules[2]]:
        cells = [line[a:end].strip() for (a, _), end in zip(spans, ends, strict=True)]
        if cells[2] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells, strict=True)]
    return rows


def test_every_table_of_the_reductions_is_the_registry():
    from pathlib import Path

    from lossviz import reductions

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert reductions.reduction_markdown() in readme
    names = [row[0] for row in _rst_rows(reductions.__doc__)]
    want = [
        f"{r.name} ({', '.join(a for a in r.aliases if a != 'weighted')})"
        if r.name == "token_mean"
        else r.name
        for r in lv.REDUCTIONS.values()
    ]
    assert names == want


def test_the_rl_table_names_each_mode_with_its_registered_reduction():
    import re

    from lossviz import rl

    seen = set()
    for project_cell, _w, reduction, _paper in _rst_rows(rl.__doc__):
        project = project_cell.split()[0].lower()
        names = re.findall(r"``([^`]+)``", project_cell)
        if project == "trl" and "GSPO" in project_cell:
            names.append("gspo")
        for name in names:
            key = f"{project}:{name}"
            assert rl.MODES[key].reduction == reduction, key
            assert reduction in lv.REDUCTIONS
            seen.add(key)
    assert seen == set(rl.MODES)


@pytest.mark.parametrize("name", ["token_mean", "sample_mean", "seq_mean_token_sum", "sum"])
def test_global_weights_of_a_part_are_the_rows_of_the_whole(name):
    from lossviz.reductions import global_weights

    mask = lv.mask_from_lengths([3, 0, 7, 20, 5])
    whole = lv.weights(mask, name)
    N, nonempty = float(mask.sum()), 4
    for rows in ([0, 1], [2, 3, 4]):
        part = global_weights(mask[rows], name, num_tokens=N, num_samples=nonempty)
        torch.testing.assert_close(part, whole[rows], rtol=0, atol=0)
    # no count given: the part's own weights
    torch.testing.assert_close(global_weights(mask[[2, 3]], name), lv.weights(mask[[2, 3]], name))
    with pytest.raises(ValueError, match="num_tokens must be a positive count"):
        global_weights(mask, name, num_tokens=0)
