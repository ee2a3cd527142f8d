"""lv.chat: ChatML tokens with their owners, masks by strategy, split_turns, JSONL loading."""

import json

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import lossviz as lv
from lossviz.chat import (
    completion_only_mask,
    find_subsequence,
    load_chat_kinds,
    load_chats,
    loss_mask,
    render,
    split_turns,
    synthetic_conversation,
    tokenize,
    turn_weights,
)
from lossviz.tokenizer import IM_END, IM_START, SPACE, load_tokenizer

# Small enough to check by hand (positions listed in test_tokens_by_hand).
CHAT = [
    {"role": "user", "content": "the cat"},
    {"role": "assistant", "content": "it ran"},
    {"role": "user", "content": "then"},
    {"role": "assistant", "content": "far away then"},
]
FIRST = [11, 12, 13]  # it, ▁ran, <|im_end|>
SECOND = [24, 25, 26, 27]  # far, ▁away, ▁then, <|im_end|>


def ones_at(positions, T=29, rest=0.0):
    m = torch.full((T,), rest)
    m[positions] = 1.0
    return m


def test_tokens_by_hand():
    t = tokenize(CHAT)
    head = [SPACE, IM_START, "user", "\n", "the", SPACE + "cat", IM_END, "\n"]
    assert list(t.pieces[:8]) == head
    assert list(t.pieces[11:15]) == ["it", SPACE + "ran", IM_END, "\n"]
    assert list(t.pieces[24:]) == ["far", SPACE + "away", SPACE + "then", IM_END, "\n"]
    assert len(t) == 29
    assert t.turn.tolist() == [0] * 8 + [1] * 7 + [2] * 6 + [3] * 8
    content = [4, 5, 11, 12, 18, 24, 25, 26]
    assert torch.equal(t.template, ~ones_at(content).bool())
    assert t.end_of_turn.nonzero().flatten().tolist() == [6, 13, 19, 27]
    assert t.roles[11] == "assistant" and t.roles[18] == "user"
    assert render(CHAT).startswith(f"{IM_START}user\nthe cat{IM_END}\n{IM_START}assistant\n")


def test_every_strategy_by_hand():
    t = tokenize(CHAT)
    assert torch.equal(loss_mask(t, "all"), torch.ones(29))
    assert torch.equal(loss_mask(t, "assistant"), ones_at(FIRST + SECOND))
    assert torch.equal(loss_mask(t, "last_assistant"), ones_at(SECOND))
    no_eot = loss_mask(t, "assistant", train_end_of_turn=False)
    assert torch.equal(no_eot, ones_at([11, 12, 24, 25, 26]))
    assert torch.equal(loss_mask(t, "last_assistant", 0.25), ones_at(SECOND, rest=0.25))
    assert torch.equal(loss_mask(t, "all", 0.5), torch.ones(29))


def test_split_turns_gives_prefixes_trained_on_their_last_turn():
    parts = split_turns(CHAT)
    assert parts == [CHAT[:2], CHAT]
    first = tokenize(parts[0])
    assert first.pieces == tokenize(CHAT).pieces[:15]
    assert torch.equal(loss_mask(first, "last_assistant"), ones_at(FIRST, T=15))


def test_split_vs_masked_turn_weights():
    t = tokenize(CHAT)
    masked = loss_mask(t, "assistant").unsqueeze(0)
    for red in ("token_mean", "sample_mean"):  # one example: both are the token mean
        w = lv.weights(masked, red)[0]
        assert torch.allclose(turn_weights(t, w)[[1, 3]], torch.tensor([3 / 7, 4 / 7]))
    split = torch.zeros(2, 29)
    split[0, :15] = loss_mask(tokenize(CHAT[:2]), "last_assistant")
    split[1] = loss_mask(t, "last_assistant")
    assert torch.allclose(lv.sample_weights(split, "token_mean"), torch.tensor([3 / 7, 4 / 7]))
    assert torch.allclose(lv.sample_weights(split, "sample_mean"), torch.tensor([0.5, 0.5]))


def test_template_tokens_depend_on_context():
    tok = load_tokenizer()
    alone = tok.encode(f"{IM_START}assistant\n")
    t = tokenize(CHAT)
    assert find_subsequence(t.ids, alone) == []  # the dummy ▁ never occurs in context
    assert find_subsequence(t.ids, alone[1:]) == [
        8,
        21,
    ]  # Clay's SFTTrainer post slices the prefix off
    # a reply that starts with a newline merges with the template's "\n": no match at all
    chat = [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "\nit ran"}]
    t2 = tokenize(chat)
    assert t2.pieces[10] == "\n\n" and not bool(t2.template[10])
    assert find_subsequence(t2.ids, alone[1:]) == []
    with pytest.raises(ValueError, match="not found"):
        completion_only_mask(t2, alone[1:])
    assert float(loss_mask(t2, "assistant")[10]) == 1.0  # the straddling token is content


def test_completion_only_collator_trains_from_the_last_template():
    t = tokenize(CHAT)
    tpl = load_tokenizer().encode(f"{IM_START}assistant\n")[1:]
    collator = completion_only_mask(t, tpl)
    # like last_assistant, plus the final "\n" after <|im_end|> that the collator also trains
    assert torch.equal(collator, ones_at(SECOND + [28]))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=4),
    st.data(),
)
def test_synthetic_lengths_are_exact_and_split_is_a_prefix(user, data):
    assistant = data.draw(st.lists(st.integers(1, 6), min_size=len(user), max_size=len(user)))
    msgs = synthetic_conversation(user, assistant)
    t = tokenize(msgs)
    content = ~t.template
    for k, n in enumerate([x for pair in zip(user, assistant, strict=True) for x in pair]):
        assert int((content & (t.turn == k)).sum()) == n
    trained = loss_mask(t, "assistant")
    assert float(trained.sum()) == sum(assistant) + len(assistant)
    for part in split_turns(msgs):
        p = tokenize(part)
        assert p.pieces == t.pieces[: len(p)]
        assert float(loss_mask(p, "last_assistant").sum()) == assistant[len(part) // 2 - 1] + 1


@pytest.mark.parametrize(
    "bad, match",
    [
        ([], "empty"),
        ("hello", "list of messages"),
        ([{"role": "robot", "content": "x"}], "unknown role"),
        ([{"content": "x"}], "lacks"),
        ([{"role": "user"}], "lacks"),
        ([{"role": "user", "content": 3}], "string"),
        (["hi"], "dict"),
        ([{"role": "user", "content": f"a{IM_END}"}], "marker"),
    ],
)
def test_bad_conversations_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        tokenize(bad)


def test_strategies_need_an_assistant_turn_and_valid_arguments():
    t = tokenize([{"role": "user", "content": "the cat"}])
    assert torch.equal(loss_mask(t, "all"), torch.ones(len(t)))
    for strategy in ("assistant", "last_assistant"):
        with pytest.raises(ValueError, match="none"):
            loss_mask(t, strategy)
    with pytest.raises(ValueError, match="no assistant"):
        split_turns([{"role": "user", "content": "the cat"}])
    t = tokenize(CHAT)
    with pytest.raises(ValueError, match="unknown strategy"):
        loss_mask(t, "user")
    for plw in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="prompt_weight"):
            loss_mask(t, "assistant", plw)
    with pytest.raises(TypeError):
        loss_mask(CHAT, "assistant")
    with pytest.raises(ValueError, match="entries"):
        turn_weights(t, torch.ones(3))


def test_bundled_chats_load_with_their_kinds():
    chats, kinds = load_chats(), load_chat_kinds()
    assert 30 <= len(chats) <= 60 and len(kinds) == len(chats)
    assert set(kinds) == {"multiple_choice", "short_answer", "long_answer", "multi_turn"}
    multi = [c for c, k in zip(chats, kinds, strict=True) if k == "multi_turn"]
    assert all(sum(m["role"] == "assistant" for m in c) >= 2 for c in multi)


def write(tmp_path, lines):
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_user_jsonl_loads_objects_and_bare_lists(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}], "id": 7}
    path = write(tmp_path, [json.dumps(good), "", json.dumps(good["messages"])])
    assert load_chats(path) == [good["messages"], good["messages"]]


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"messages": [', "not valid JSON"),
        ('{"text": "hi"}', "no 'messages' key"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', "unknown role"),
        ('{"messages": []}', "empty"),
        ('{"messages": [{"role": "user"}]}', "lacks"),
        ("42", "list of messages"),
    ],
)
def test_malformed_jsonl_line_reports_its_number_and_reason(tmp_path, line, reason):
    ok = json.dumps([{"role": "user", "content": "hi"}])
    path = write(tmp_path, [ok, "", line])
    with pytest.raises(ValueError, match=f":3: .*{reason}"):
        load_chats(path)


def test_empty_jsonl_file(tmp_path):
    with pytest.raises(ValueError, match="no conversation"):
        load_chats(write(tmp_path, ["", "  "]))


def test_show_marks_newlines_and_spaces():
    lines = tokenize(CHAT).show().splitlines()
    assert lines[0] == f"0 user     | {SPACE}|{IM_START}|user|\u23ce|the|{SPACE}cat|{IM_END}|\u23ce"
    assert len(lines) == 4


_content = st.text(alphabet="ab \n.", min_size=0, max_size=12)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": _content}
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_message, min_size=1, max_size=5), st.floats(0.0, 1.0))
@example([{"role": "assistant", "content": ""}], 0.9999999999999999)  # 1.0 in float32
def test_mask_invariants_on_random_conversations(messages, plw):
    t = tokenize(messages)
    assert "".join(t.pieces).replace(SPACE, " ")[1:] == render(messages)
    assert torch.equal(loss_mask(t, "all", plw), torch.ones(len(t)))
    if not any(m["role"] == "assistant" for m in messages):
        return
    every, last = loss_mask(t, "assistant"), loss_mask(t, "last_assistant")
    assert bool((last <= every).all()) and float(last.sum()) >= 1  # at least <|im_end|>
    weighted = loss_mask(t, "assistant", plw)
    # masks are float32: a prompt weight within half an ulp of 1 (0.9999999999999999) is 1 there
    assert torch.equal(weighted == 1, every == 1) or torch.tensor(plw).item() == 1.0
    assert bool(((weighted == 1) | (weighted == plw)).all())
    assert torch.equal(turn_weights(t, torch.ones(len(t))).sum(), torch.tensor(float(len(t))))


def test_batch_turn_weights_of_a_split_conversation():
    """Split into one example per assistant turn, token mean weighs each assistant turn by its
    tokens: the turn totals are n_turn / N, and every example's W sums with the others to 1."""
    msgs = synthetic_conversation([3, 3], [2, 6])
    examples = [tokenize(m) for m in split_turns(msgs)]
    masks = [loss_mask(ex, "last_assistant") for ex in examples]
    w_rows, totals, shares = lv.chat.batch_turn_weights(examples, masks, "token_mean")
    assert [len(w) for w in w_rows] == [len(ex) for ex in examples]
    assert float(sum(w.sum() for w in w_rows)) == pytest.approx(1.0)
    trained = [float(m.sum()) for m in masks]  # each turn's content and its <|im_end|>
    assert shares.tolist() == pytest.approx([t / sum(trained) for t in trained])
    assert float(totals.sum()) == pytest.approx(1.0)
    roles = [m["role"] for m in examples[-1].messages]
    assert [float(v) for v, r in zip(totals, roles, strict=True) if r == "user"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="one mask per example"):
        lv.chat.batch_turn_weights(examples, masks[:1])
    with pytest.raises(ValueError, match="prefix"):
        lv.chat.batch_turn_weights(examples[::-1], masks[::-1])


def test_load_chats_names_a_missing_file_a_folder_and_a_non_path(tmp_path):
    with pytest.raises(ValueError, match="nope.jsonl: no such file; check the path"):
        lv.chat.load_chats(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="is a folder, not a file"):
        lv.chat.load_chats(tmp_path)
    for bad in (42, ["a.jsonl"]):
        with pytest.raises(ValueError, match="path must be the path of a JSONL file"):
            lv.chat.load_chats(bad)
    good = tmp_path / "one.jsonl"
    good.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert len(lv.chat.load_chats(str(good).encode())) == 1  # bytes paths still read


def test_synthetic_conversation_says_the_longest_turn():
    with pytest.raises(
        ValueError, match="user_tokens\\[0\\] must be an integer <= 100000, got an integer of 61"
    ):
        lv.chat.synthetic_conversation([10**60], [3])
