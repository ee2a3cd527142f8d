"""A tiny deterministic tokenizer that ships with lossviz: greedy longest match over a fixed vocabulary.

It is small enough to read and behaves like the real ones in the two ways that matter for chat masks:

* ``<|im_start|>`` and ``<|im_end|>`` are atomic special tokens (as in Qwen and other ChatML models);
* the text between them is split into the longest pieces of the vocabulary, with spaces written ``▁``
  and glued to the next word (sentencepiece style), and every ``encode`` call puts a dummy ``▁`` in
  front of its text (sentencepiece's ``add_dummy_prefix``, as in Llama and Mistral).

So a string's tokens depend on what surrounds it: ``"Sure"`` alone is ``▁Sure`` but ``Sure`` after a
newline, and ``"\\n"`` followed by another ``"\\n"`` is the single piece ``\\n\\n``. The vocabulary
(``lossviz/data/chat_vocab.json``) is built by :func:`build_vocab` from the bundled conversations.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

__all__ = [
    "IM_START",
    "IM_END",
    "UNK",
    "SPECIAL_TOKENS",
    "SPACE",
    "Tokenizer",
    "build_vocab",
    "load_tokenizer",
]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
UNK = "<|unk|>"
SPECIAL_TOKENS = (IM_START, IM_END, UNK)
SPACE = "\u2581"  # ▁, sentencepiece's visible space
ROLE_WORDS = ("system", "user", "assistant")
# Words that are single pieces with and without a leading space, so that synthetic conversations
# can be built with an exact number of tokens (see lossviz.chat.synthetic_conversation).
FILLER_WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "far", "away")
_BASE = (SPACE, "\n", "\n\n") + tuple(chr(c) for c in range(33, 127))
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in SPECIAL_TOKENS) + ")")
_WORD_RE = re.compile(r"( ?)([A-Za-z]+)")


def build_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """The vocabulary: special tokens, ``▁``, newlines, printable ASCII, then frequent words.

    A word seen at least ``min_count`` times becomes a piece, as ``▁word`` when a space precedes it
    and as ``word`` otherwise (the two are different pieces). Deterministic: sorted by count, then text.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        for space, word in _WORD_RE.findall(text):
            counts[(SPACE if space else "") + word] += 1
    words = [w for w, c in counts.items() if c >= min_count and len(w) > 1]
    words.sort(key=lambda w: (-counts[w], w))
    fixed = list(ROLE_WORDS) + [p + w for w in FILLER_WORDS for p in ("", SPACE)]
    vocab = list(SPECIAL_TOKENS) + list(_BASE)
    for piece in fixed + words:
        if piece not in vocab:
            vocab.append(piece)
    return vocab


class Tokenizer:
    """Greedy longest-match tokenizer: ``encode(text) -> list[int]``, ``decode(ids) -> str``."""

    def __init__(self, vocab: list[str]) -> None:
        if len(set(vocab)) != len(vocab):
            raise ValueError("the vocabulary has duplicate pieces")
        missing = [p for p in SPECIAL_TOKENS + _BASE if p not in vocab]
        if missing:
            raise ValueError(f"the vocabulary lacks the base pieces {missing[:5]}")
        self.vocab = list(vocab)
        self.ids = {p: i for i, p in enumerate(self.vocab)}
        self.longest_piece = max(len(p) for p in self.vocab if p not in SPECIAL_TOKENS)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode_pieces(self, text: str, add_prefix: bool = True) -> list[tuple[str, int, int]]:
        """``(piece, start, end)`` per token; ``text[start:end]`` is what the piece covers.

        The dummy prefix ``▁`` covers no character of ``text`` (``start == end == 0``).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        out: list[tuple[str, int, int]] = [(SPACE, 0, 0)] if add_prefix else []
        pos = 0
        for part in _SPECIAL_RE.split(text):
            if part in SPECIAL_TOKENS:
                out.append((part, pos, pos + len(part)))
            else:
                out.extend(self._greedy(part, pos))
            pos += len(part)
        if add_prefix and len(out) > 1 and out[1][0] not in SPECIAL_TOKENS:
            # sentencepiece glues the dummy prefix to the first word when the pair is a piece
            merged = SPACE + out[1][0]
            if merged in self.ids:
                out[:2] = [(merged, out[1][1], out[1][2])]
        return out

    def _greedy(self, text: str, offset: int) -> list[tuple[str, int, int]]:
        norm = text.replace(" ", SPACE)
        pieces, i = [], 0
        while i < len(norm):
            for j in range(min(len(norm), i + self.longest_piece), i, -1):
                if norm[i:j] in self.ids:
                    pieces.append((norm[i:j], offset + i, offset + j))
                    i = j
                    break
            else:  # a character outside the vocabulary (non-ASCII)
                pieces.append((UNK, offset + i, offset + i + 1))
                i += 1
        return pieces

    def encode(self, text: str, add_prefix: bool = True) -> list[int]:
        """Token ids of ``text`` (greedy longest match; ``add_prefix``: the dummy ``▁`` in front)."""
        return [self.ids[p] for p, _, _ in self.encode_pieces(text, add_prefix)]

    def tokens(self, text: str, add_prefix: bool = True) -> list[str]:
        """The pieces of ``text`` as strings (what :meth:`encode` numbers)."""
        return [p for p, _, _ in self.encode_pieces(text, add_prefix)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (``▁`` back to spaces; a leading dummy space is kept)."""
        return "".join(self.vocab[int(i)] for i in ids).replace(SPACE, " ")


@lru_cache(maxsize=1)
def load_tokenizer() -> Tokenizer:
    """The tokenizer bundled with lossviz (``lossviz/data/chat_vocab.json``), loaded once."""
    text = resources.files("lossviz").joinpath("data/chat_vocab.json").read_text("utf-8")
    return Tokenizer(json.loads(text))
