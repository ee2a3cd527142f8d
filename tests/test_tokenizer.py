"""The bundled tokenizer: greedy longest match, atomic ChatML markers, context-dependent pieces."""

import json
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lossviz as lv
from lossviz.tokenizer import (
    FILLER_WORDS,
    IM_END,
    IM_START,
    SPACE,
    UNK,
    Tokenizer,
    build_vocab,
    load_tokenizer,
)

TOK = load_tokenizer()


def test_bundled_vocab_is_rebuilt_from_the_bundled_chats():
    text = resources.files("lossviz").joinpath("data/chat_vocab.json").read_text("utf-8")
    chats = lv.chat.load_chats()
    rebuilt = build_vocab(m["content"] for c in chats for m in c)
    assert json.loads(text) == rebuilt, (
        "after editing chats.jsonl run lossviz.chat.write_bundled_vocab()"
    )


def test_markers_are_single_tokens_and_template_alone():
    assert TOK.tokens(f"{IM_START}assistant\n") == [SPACE, IM_START, "assistant", "\n"]
    assert TOK.tokens(f"{IM_START}assistant\n", add_prefix=False) == [IM_START, "assistant", "\n"]
    assert TOK.tokens(f"x{IM_END}y", add_prefix=False) == ["x", IM_END, "y"]


def test_greedy_longest_match_and_spaces():
    # "the" and "▁cat" are pieces; a space is glued to the word after it
    assert TOK.tokens("the cat", add_prefix=False) == ["the", SPACE + "cat"]
    # the dummy prefix merges with the first word when that pair is a piece
    assert TOK.tokens("the cat") == [SPACE + "the", SPACE + "cat"]


def test_newline_merges_with_a_following_newline():
    assert TOK.tokens("a\nb", add_prefix=False) == ["a", "\n", "b"]
    assert TOK.tokens("a\n\nb", add_prefix=False) == ["a", "\n\n", "b"]


def test_unknown_characters_become_unk():
    assert TOK.tokens("é", add_prefix=False) == [UNK]


def test_filler_words_are_single_pieces_with_and_without_space():
    for w in FILLER_WORDS:
        assert w in TOK.ids and SPACE + w in TOK.ids


def test_offsets_cover_the_text():
    text = f"{IM_START}user\nthe cat sat{IM_END}\n"
    pieces = TOK.encode_pieces(text)
    assert pieces[0] == (SPACE, 0, 0)
    assert "".join(text[s:e] for _, s, e in pieces) == text


@given(st.text(alphabet="abc \n.T", max_size=40))
def test_decode_inverts_encode_without_prefix(text):
    assert TOK.decode(TOK.encode(text, add_prefix=False)) == text


def test_bad_vocabularies_and_inputs():
    with pytest.raises(ValueError, match="duplicate"):
        Tokenizer(list(TOK.vocab) + ["the"])
    with pytest.raises(ValueError, match="base pieces"):
        Tokenizer(["a", "b"])
    with pytest.raises(TypeError):
        TOK.encode(3)
