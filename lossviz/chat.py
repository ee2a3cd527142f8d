"""Chat data: a conversation rendered with ChatML, its tokens, and which tokens a strategy trains.

A conversation is a list of messages ``{"role": "system" | "user" | "assistant", "content": str}``.
:func:`tokenize` renders every message as ``<|im_start|>ROLE\\nCONTENT<|im_end|>\\n`` and encodes the
whole string once with the bundled tokenizer (:mod:`lossviz.tokenizer`), keeping for each token the
message (turn) it starts in, its role, and whether it is template rather than content.

:func:`loss_mask` turns that into each token's training weight ``m[t]``; the reductions of
:mod:`lossviz.reductions` then say how much each token and each turn weighs in the loss:

================= ==================================== =========================================
strategy          trained tokens (weight 1)            same as
================= ==================================== =========================================
all               every token                          torchtune ``train_on_all``; plain LM loss
assistant         content of every assistant turn      torchtune ``train_on_assistant``; TRL
                                                       ``assistant_only_loss=True``
last_assistant    content of the last assistant turn   torchtune ``train_on_last``; TRL's former
                                                       ``DataCollatorForCompletionOnlyLM`` with only
                                                       a ``response_template``
================= ==================================== =========================================

``train_end_of_turn`` (default True) also trains the ``<|im_end|>`` that closes each trained turn: the
model must learn to stop (TRL's training chat templates keep it inside the ``{% generation %}``
span that ``assistant_only_loss`` trains). Every other token gets
``prompt_weight`` (0 = masked, 1 = trained like the completion; Huerta-Enochian & Ko 2024).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import torch

from .checks import ArgumentTypeError, integer, number
from .data_files import data_file
from .reductions import weights
from .tokenizer import FILLER_WORDS, IM_END, IM_START, build_vocab, load_tokenizer

__all__ = [
    "ROLES",
    "STRATEGIES",
    "ChatTokens",
    "check_messages",
    "render",
    "tokenize",
    "loss_mask",
    "split_turns",
    "turn_weights",
    "batch_turn_weights",
    "completion_only_mask",
    "find_subsequence",
    "synthetic_conversation",
    "load_chats",
    "load_chat_kinds",
    "write_bundled_vocab",
]

ROLES = ("system", "user", "assistant")
STRATEGIES = {
    "all": "every token (torchtune train_on_all)",
    "assistant": "every assistant turn (torchtune train_on_assistant; TRL assistant_only_loss)",
    "last_assistant": "the last assistant turn only (torchtune train_on_last; TRL's former "
    "DataCollatorForCompletionOnlyLM with only a response_template)",
}


def check_messages(messages: object, need_assistant: bool = False) -> list[dict]:
    """``messages`` as a list of ``{"role", "content"}`` dicts, or a ``ValueError`` saying what is wrong."""
    if isinstance(messages, Mapping) and "messages" in messages:
        messages = messages["messages"]
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ValueError(
            f"a conversation must be a list of messages, got {type(messages).__name__}"
        )
    if len(messages) == 0:
        raise ValueError("the conversation is empty: give at least one message")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise ValueError(f"message {i} must be a dict with 'role' and 'content'")
        missing = [k for k in ("role", "content") if k not in msg]
        if missing:
            raise ValueError(f"message {i} lacks the key(s) {missing}")
        role, content = msg["role"], msg["content"]
        if role not in ROLES:
            raise ValueError(f"message {i} has unknown role {role!r}; use one of {ROLES}")
        if not isinstance(content, str):
            raise ValueError(f"message {i}: content must be a string, got {type(content).__name__}")
        if IM_START in content or IM_END in content:
            raise ValueError(f"message {i}: content contains a ChatML marker")
        out.append({"role": role, "content": content})
    if need_assistant and not any(m["role"] == "assistant" for m in out):
        raise ValueError("the conversation has no assistant turn, so nothing would be trained")
    return out


def render(messages: Sequence[Mapping]) -> str:
    """The ChatML text: ``<|im_start|>ROLE\\nCONTENT<|im_end|>\\n`` for every message."""
    return "".join(_segments(check_messages(messages))[0])


def _segments(messages: list[dict]) -> tuple[list[str], list[tuple[int, bool]]]:
    parts, owners = [], []
    for i, m in enumerate(messages):
        for text, is_template in (
            (f"{IM_START}{m['role']}\n", True),
            (m["content"], False),
            (f"{IM_END}\n", True),
        ):
            parts.append(text)
            owners.append((i, is_template))
    return parts, owners


@dataclass(frozen=True)
class ChatTokens:
    """The tokens of one rendered conversation, with what each belongs to (all ``[T]``)."""

    messages: tuple[dict, ...]
    pieces: tuple[str, ...]  # the token strings (``▁`` is a space)
    ids: torch.Tensor  # [T] long: token ids in the bundled vocabulary
    turn: torch.Tensor  # [T] long: index of the message the token starts in
    template: torch.Tensor  # [T] bool: True if every character is template (markers, role, "\n")
    end_of_turn: torch.Tensor  # [T] bool: the <|im_end|> tokens

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def roles(self) -> tuple[str, ...]:
        """Role of each token (the role of its turn)."""
        return tuple(self.messages[int(i)]["role"] for i in self.turn)

    def role_mask(self, role: str) -> torch.Tensor:
        """``[T]`` bool: tokens whose turn has ``role``."""
        turns = [i for i, m in enumerate(self.messages) if m["role"] == role]
        return torch.isin(self.turn, torch.tensor(turns, dtype=torch.long))

    def show(self) -> str:
        """One line per turn: ``turn role | piece|piece|...`` with newlines as ``⏎``, spaces as ``▁``."""
        lines = []
        for k, m in enumerate(self.messages):
            pieces = [
                p.replace("\n", "\u23ce")
                for p, u in zip(self.pieces, self.turn, strict=True)
                if u == k
            ]
            lines.append(f"{k} {m['role']:<9}| " + "|".join(pieces))
        return "\n".join(lines)

    def table(self) -> list[tuple[int, str, str, int, bool]]:
        """One row per token: ``(position, piece, role, turn, template)`` for printing."""
        return [
            (t, p, r, int(u), bool(s))
            for t, (p, r, u, s) in enumerate(
                zip(self.pieces, self.roles, self.turn, self.template, strict=True)
            )
        ]


def tokenize(messages: Sequence[Mapping]) -> ChatTokens:
    """Render ``messages`` with ChatML and encode the whole text once: ``T`` tokens with their owners.

    A token that straddles a template/content boundary (``\\n\\n`` when the content starts with a
    newline) is content: it belongs to the message it starts in and ``template`` is False for it.
    """
    msgs = check_messages(messages)
    parts, owners = _segments(msgs)
    char_turn, char_template = [], []
    for text, (turn, is_template) in zip(parts, owners, strict=True):
        char_turn += [turn] * len(text)
        char_template += [is_template] * len(text)
    tok = load_tokenizer()
    encoded = tok.encode_pieces("".join(parts), add_prefix=True)
    pieces, turn, template = [], [], []
    for piece, start, end in encoded:
        pieces.append(piece)
        turn.append(char_turn[start] if end > start else char_turn[0])
        template.append(all(char_template[start:end]))
    return ChatTokens(
        messages=tuple(msgs),
        pieces=tuple(pieces),
        ids=torch.tensor([tok.ids[p] for p in pieces], dtype=torch.long),
        turn=torch.tensor(turn, dtype=torch.long),
        template=torch.tensor(template, dtype=torch.bool),
        end_of_turn=torch.tensor([p == IM_END for p in pieces], dtype=torch.bool),
    )


def loss_mask(
    tokenized: ChatTokens,
    strategy: str = "assistant",
    prompt_weight: float = 0.0,
    *,
    train_end_of_turn: bool = True,
) -> torch.Tensor:
    """Each token's weight ``m: [T]``: 1 on trained tokens, ``prompt_weight`` on every other token.

    Trained: see the module table. ``train_end_of_turn`` adds each trained turn's ``<|im_end|>``;
    when False that token is treated like the prompt. Use ``m`` as the mask of :func:`lv.weights`.
    """
    if not isinstance(tokenized, ChatTokens):
        raise TypeError("loss_mask takes the result of lv.chat.tokenize(messages)")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    prompt_weight = number("prompt_weight", prompt_weight, low=0.0, high=1.0)
    if strategy == "all":
        return torch.ones(len(tokenized))
    assistant_turns = [i for i, m in enumerate(tokenized.messages) if m["role"] == "assistant"]
    if not assistant_turns:
        raise ValueError(
            f"strategy {strategy!r} trains assistant turns, but the conversation has none"
        )
    turns = assistant_turns[-1:] if strategy == "last_assistant" else assistant_turns
    in_turn = torch.isin(tokenized.turn, torch.tensor(turns, dtype=torch.long))
    trained = in_turn & ~tokenized.template
    if train_end_of_turn:
        trained |= in_turn & tokenized.end_of_turn
    return torch.where(trained, 1.0, float(prompt_weight))


def split_turns(messages: Sequence[Mapping]) -> list[list[dict]]:
    """One conversation per assistant turn: the messages up to and including it.

    This is the "split" format of Jun's post *Loss Reduction* (2024,
    https://rich-junwang.github.io/en-us/posts/tech/ml/loss/loss_reduction/).

    Train each with ``strategy="last_assistant"``: together they train every assistant turn once.
    """
    msgs = check_messages(messages, need_assistant=True)
    return [msgs[: i + 1] for i, m in enumerate(msgs) if m["role"] == "assistant"]


def turn_weights(tokenized: ChatTokens, w: torch.Tensor) -> torch.Tensor:
    """``[M]``: the total weight ``sum_{t in turn k} w[t]`` of each message k (``w: [T]``)."""
    w = torch.as_tensor(w).reshape(-1)
    if w.numel() != len(tokenized):
        raise ValueError(f"w has {w.numel()} entries but the conversation has {len(tokenized)}")
    out = torch.zeros(len(tokenized.messages), dtype=w.dtype)
    return out.index_add_(0, tokenized.turn, w)


def batch_turn_weights(
    examples: Sequence[ChatTokens], masks: Sequence[torch.Tensor], reduction: str = "token_mean"
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Examples of one conversation trained as one batch: each token's ``W``, each turn's total.

    ``examples``: K tokenized examples whose messages are prefixes of the last one's (one masked
    conversation, or :func:`split_turns`); ``masks``: their token weights ``[T_k]`` (:func:`loss_mask`).
    The right-padded batch ``m: [K, max T_k]`` gives ``W = weights(m, reduction)``. Returns ``w_k =
    W[k, :T_k]`` per example, ``totals: [M]`` (``totals[i] = sum_k`` of ``w_k`` over message i of
    example k) and ``shares``: the assistant turns' totals divided by their sum.
    """
    if len(examples) != len(masks) or not examples:
        raise ValueError(f"one mask per example: got {len(examples)} examples, {len(masks)} masks")
    batch = torch.zeros(len(examples), max(len(ex) for ex in examples))
    for b, (ex, m) in enumerate(zip(examples, masks, strict=True)):
        if len(m) != len(ex):
            raise ValueError(f"mask {b} has {len(m)} entries for an example of {len(ex)} tokens")
        batch[b, : len(m)] = m
    w_batch = weights(batch, reduction)
    w_rows = [w_batch[b, : len(ex)] for b, ex in enumerate(examples)]
    msgs = examples[-1].messages
    totals = torch.zeros(len(msgs))
    for ex, w in zip(examples, w_rows, strict=True):
        if tuple(ex.messages) != tuple(msgs[: len(ex.messages)]):
            raise ValueError("every example must be a prefix of the last one (see split_turns)")
        totals[: len(ex.messages)] += turn_weights(ex, w)
    is_assistant = torch.tensor([m["role"] == "assistant" for m in msgs])
    shares = totals[is_assistant] / totals[is_assistant].sum().clamp_min(1e-30)
    return w_rows, totals, shares


def find_subsequence(ids: Sequence[int], pattern: Sequence[int]) -> list[int]:
    """Start positions where ``pattern`` occurs in ``ids`` (what a template search looks for)."""
    ids, pattern = [int(i) for i in ids], [int(i) for i in pattern]
    if not pattern:
        raise ValueError("the pattern to find is empty")
    n = len(pattern)
    return [i for i in range(len(ids) - n + 1) if ids[i : i + n] == pattern]


def completion_only_mask(tokenized: ChatTokens, response_template: Sequence[int]) -> torch.Tensor:
    """``[T]``: 1 after the LAST occurrence of ``response_template`` (token ids), 0 before it.

    What TRL's former ``DataCollatorForCompletionOnlyLM(response_template=...)`` did without an
    ``instruction_template``; it warned and ignored the example when the template was not found,
    which here is a ``ValueError``.
    """
    starts = find_subsequence(tokenized.ids.tolist(), response_template)
    if not starts:
        raise ValueError(
            "response template not found in the tokens: a template tokenized alone can differ "
            "from its tokens in context (lossviz.tokenizer explains why)"
        )
    mask = torch.zeros(len(tokenized))
    mask[starts[-1] + len(response_template) :] = 1.0
    return mask


MAX_TURN_TOKENS = 100_000  # a synthetic turn's longest content (filler words, one token each)


def synthetic_conversation(
    user_tokens: Sequence[int], assistant_tokens: Sequence[int], system_tokens: int = 0
) -> list[dict]:
    """A conversation whose k-th user and assistant contents have exactly the given token counts.

    Each count is an integer from 1 (0 for the system prompt) to :data:`MAX_TURN_TOKENS`.
    """
    if len(user_tokens) != len(assistant_tokens) or not user_tokens:
        raise ValueError("give one user and one assistant length per turn (at least one turn)")
    for role, counts in (("user_tokens", user_tokens), ("assistant_tokens", assistant_tokens)):
        for k, n in enumerate(counts):
            if integer(f"{role}[{k}]", n, high=MAX_TURN_TOKENS) < 1:
                raise ValueError("every user and assistant turn needs at least one token")
    integer("system_tokens", system_tokens, low=0, high=MAX_TURN_TOKENS)
    words = FILLER_WORDS

    def text(n: int, start: int) -> str:
        return " ".join(words[(start + k) % len(words)] for k in range(int(n)))

    msgs = [{"role": "system", "content": text(system_tokens, 0)}] if system_tokens else []
    for k, (u, a) in enumerate(zip(user_tokens, assistant_tokens, strict=True)):
        msgs.append({"role": "user", "content": text(u, 3 * k)})
        msgs.append({"role": "assistant", "content": text(a, 3 * k + 1)})
    return msgs


def _read_file(path: object) -> tuple[bytes, str]:
    """The bytes of the file at ``path`` and its name, or an error that names the problem."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"path must be the path of a JSONL file (a str or pathlib.Path) or None for the bundled "
            f"chats, got {type(path).__name__} {path!r}"
        )
    name = os.fspath(path)
    if os.path.isdir(name):
        raise ValueError(f"{name}: is a folder, not a file; give the path of a JSONL file")
    try:
        with open(name, "rb") as f:
            return f.read(), name
    except FileNotFoundError:
        raise ValueError(
            f"{name}: no such file; check the path (one conversation per line)"
        ) from None
    except OSError as err:
        raise ValueError(f"{name}: cannot be read ({err.strerror or err})") from None


def load_chats(path: str | os.PathLike | None = None) -> list[list[dict]]:
    """Conversations from a JSONL file, one per line (``None``: the bundled ``data/chats.jsonl``).

    A line is ``{"messages": [...]}`` (other keys are kept out) or a bare list of messages. Blank
    lines are skipped; any other bad line raises ``ValueError("FILE:LINE: reason")``.
    """
    if path is None:
        name = "chats.jsonl (bundled)"
        data = resources.files("lossviz").joinpath("data/chats.jsonl").read_bytes()
    else:
        data, name = _read_file(path)
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows editors write one)
        data = data[3:]
    chats = []
    # JSONL separates records by "\n" only: str.splitlines() would also split inside a string at
    # U+2028, U+2029 or U+0085, which json.dumps(..., ensure_ascii=False) writes unescaped
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            column = len(raw[: err.start].decode("utf-8", errors="replace")) + 1
            raise ValueError(
                f"{name}:{lineno}: not UTF-8 (byte 0x{raw[err.start]:02x} at column {column}); "
                "save the file as UTF-8 (JSONL is UTF-8)"
            ) from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{name}:{lineno}: not valid JSON ({err.msg} at column {err.colno})"
            ) from None
        if isinstance(row, Mapping) and "messages" not in row:
            raise ValueError(f"{name}:{lineno}: the object has no 'messages' key")
        try:
            chats.append(check_messages(row))
        except ValueError as err:
            raise ValueError(f"{name}:{lineno}: {err}") from None
    if not chats:
        raise ValueError(f"{name}: no conversation found (the file is empty)")
    return chats


def load_chat_kinds() -> list[str]:
    """The ``kind`` of each bundled conversation (multiple_choice, short_answer, ...), in file order."""
    text = resources.files("lossviz").joinpath("data/chats.jsonl").read_text("utf-8")
    return [json.loads(line)["kind"] for line in text.split("\n") if line.strip()]


def write_bundled_vocab() -> str:
    """Rebuild ``data/chat_vocab.json`` from the bundled chats (run after editing ``chats.jsonl``)."""

    out = data_file("chat_vocab.json")
    vocab = build_vocab(m["content"] for c in load_chats() for m in c)
    out.write_text(json.dumps(vocab, ensure_ascii=True) + "\n", encoding="utf-8")
    load_tokenizer.cache_clear()
    return str(out)
