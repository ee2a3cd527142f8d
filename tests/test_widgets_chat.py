"""The chat explorer without a kernel: render directly, then drive the controls."""

import pytest
import torch

from lossviz.widgets import EdgeCase
from lossviz.widgets.chat import chat_explorer, parse_lengths, render_chat


def test_default_render_shares_are_token_counts():
    v = render_chat(turns=3, user_lengths="6", assistant_lengths="2, 8, 4")
    # each assistant turn trains its content plus <|im_end|>: 3, 9 and 5 tokens of 17
    assert torch.allclose(v.data["assistant_shares"], torch.tensor([3, 9, 5]) / 17)
    assert v.data["examples"] == [len(v.data["W"][0])]
    assert float(v.data["turn_totals"].sum()) == pytest.approx(1.0)


def test_split_sample_mean_gives_every_turn_the_same_share():
    v = render_chat(layout="split", strategy="last_assistant", reduction="sample_mean")
    assert len(v.data["examples"]) == 3
    assert torch.allclose(v.data["assistant_shares"], torch.full((3,), 1 / 3))
    masked = render_chat(layout="masked", reduction="sample_mean")
    assert not torch.allclose(masked.data["assistant_shares"], torch.full((3,), 1 / 3))


def test_prompt_weight_moves_weight_to_user_turns():
    v0 = render_chat(prompt_weight=0.0)
    v1 = render_chat(prompt_weight=1.0)
    users = [0, 2, 4]
    assert float(v0.data["turn_totals"][users].sum()) == 0.0
    assert float(v1.data["turn_totals"][users].sum()) > 0.3


def test_sum_reduction_totals_count_tokens():
    v = render_chat(reduction="sum", train_end_of_turn=False)
    assert float(v.data["turn_totals"].sum()) == 2 + 8 + 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"turns": 0},
        {"turns": 9},
        {"assistant_lengths": "a, b"},
        {"assistant_lengths": ""},
        {"user_lengths": "0"},
        {"user_lengths": "99"},
        {"reduction": "median"},
    ],
)
def test_edge_cases_explain_themselves(kwargs):
    with pytest.raises(EdgeCase):
        render_chat(**kwargs)


def test_one_turn_one_token_renders():
    v = render_chat(turns=1, user_lengths="1", assistant_lengths="1", strategy="last_assistant")
    assert torch.allclose(v.data["assistant_shares"], torch.tensor([1.0]))


def test_parse_lengths_repeats():
    assert parse_lengths("2, 5", 3) == [2, 5, 2]
    assert parse_lengths("4;1", 2) == [4, 1]


def test_explorer_wiring_and_edge_text():
    e = chat_explorer()
    assert e.last_view.figure is not None and e.out.outputs
    e.controls["layout"].value = "split"
    e.controls["reduction"].value = "sample_mean"
    e.controls["strategy"].value = "last_assistant"
    assert torch.allclose(e.last_view.data["assistant_shares"], torch.full((3,), 1 / 3))
    e.controls["assistant_lengths"].value = "x"
    assert e.last_view.figure is None and e.last_view.text.startswith("Nothing to draw")
    e.controls["assistant_lengths"].value = "3"
    e.controls["turns"].value = 4
    assert len(e.last_view.data["examples"]) == 4
    text = [o for o in e.out.outputs if o["output_type"] == "stream"][0]["text"]
    assert "nan" not in text.lower()


def test_notebook_06_suggestion_one_token_answer_takes_half():
    kw = dict(turns=2, assistant_lengths="1, 24", strategy="last_assistant", layout="split")
    half = render_chat(reduction="sample_mean", **kw).data["assistant_shares"]
    assert torch.allclose(half, torch.tensor([0.5, 0.5]))
    by_token = render_chat(reduction="token_mean", **kw).data["assistant_shares"]
    assert torch.allclose(by_token, torch.tensor([2 / 27, 25 / 27]))
    twice = render_chat(reduction="token_mean", **{**kw, "strategy": "assistant"})
    assert torch.allclose(twice.data["assistant_shares"], torch.tensor([4 / 29, 25 / 29]))


@pytest.mark.parametrize("digits", [60, 400])
def test_a_huge_length_is_told_its_limit_not_a_python_error(digits):
    from lossviz.widgets.base import EdgeCase
    from lossviz.widgets.chat import MAX_LENGTH, render_chat

    with pytest.raises(
        EdgeCase, match=f"between 1 and {MAX_LENGTH}, got an integer of {digits} digits"
    ):
        render_chat(user_lengths="9" * digits)
    with pytest.raises(EdgeCase, match=f"0 to {MAX_LENGTH} tokens"):
        render_chat(system_length=10**60)
