"""The chat-mask explorer: turns, lengths, strategy, prompt weight and reduction -> who gets the loss.

``chat_explorer()`` returns an :class:`~lossviz.widgets.Explorer`; ``render_chat`` is its pure render
function, tested without a kernel. The conversation is synthetic (filler words with exact token
counts), laid out either as one masked example or split into one example per assistant turn.
"""

from __future__ import annotations

import functools

import ipywidgets as W

from ..chat import (
    STRATEGIES,
    batch_turn_weights,
    loss_mask,
    split_turns,
    synthetic_conversation,
    tokenize,
)
from ..plots.chat import ChatPicture
from .base import Canvas, EdgeCase, Explorer, View, check_finite, parse_list

__all__ = ["MAX_TURNS", "MAX_LENGTH", "TURN_LAYOUTS", "CHAT_REDUCTIONS", "parse_lengths"]
__all__ += ["render_chat", "chat_explorer"]

MAX_TURNS = 4
MAX_LENGTH = 24  # the longest turn a length box accepts (tokens)
# one example with the prompt masked, or one example per assistant turn (lossviz.chat.split_turns)
TURN_LAYOUTS = ("masked", "split")
CHAT_REDUCTIONS = ("token_mean", "sample_mean", "sum")  # the reductions the explorer offers


def parse_lengths(text: str, turns: int) -> list[int]:
    """``"3, 12"`` -> one length per turn (the list repeats when shorter than ``turns``)."""
    values = parse_list(text, "length", low=1, high=MAX_LENGTH, example="3, 12")
    return [values[k % len(values)] for k in range(turns)]


def _tokens(user: tuple[int, ...], assistant: tuple[int, ...], system: int, layout: str):
    msgs = synthetic_conversation(user, assistant, system)
    return [tokenize(m) for m in (split_turns(msgs) if layout == "split" else [msgs])]


def render_chat(
    turns: int = 3,
    user_lengths: str = "6",
    assistant_lengths: str = "2, 8, 4",
    system_length: int = 0,
    strategy: str = "assistant",
    prompt_weight: float = 0.0,
    reduction: str = "token_mean",
    layout: str = "masked",
    train_end_of_turn: bool = True,
    *,
    canvas: Canvas | None = None,
) -> View:
    """Token strip coloured by each token's weight ``W`` and one bar per turn (its total weight).

    ``View.data``: ``examples`` (token count of each example), ``W`` (list of ``[T_k]`` tensors),
    ``turn_totals`` (``[M]``, summed over examples), ``assistant_shares`` (shares of the assistant turns).
    Without ``canvas`` the picture is a new Figure; the explorer passes its own canvas, which keeps
    one picture and redraws only what moved.
    """
    if not 1 <= int(turns) <= MAX_TURNS:
        raise EdgeCase(f"choose between 1 and {MAX_TURNS} turns")
    if layout not in TURN_LAYOUTS or reduction not in CHAT_REDUCTIONS or strategy not in STRATEGIES:
        raise EdgeCase(f"unknown layout, reduction or strategy: {layout}, {reduction}, {strategy}")
    if not 0 <= int(system_length) <= MAX_LENGTH:
        raise EdgeCase(f"the system prompt takes 0 to {MAX_LENGTH} tokens")
    user = tuple(parse_lengths(user_lengths, int(turns)))
    assistant = tuple(parse_lengths(assistant_lengths, int(turns)))
    canvas = canvas or Canvas()
    examples = canvas.memo(_tokens, user, assistant, int(system_length), layout)
    masks = [
        loss_mask(ex, strategy, float(prompt_weight), train_end_of_turn=train_end_of_turn)
        for ex in examples
    ]
    if all(float(m.sum()) == 0 for m in masks):
        raise EdgeCase("no token has a weight: every token is masked, so the loss is 0/0")
    w_rows, totals, shares = batch_turn_weights(examples, masks, reduction)
    msgs = examples[-1].messages
    check_finite(total=float(totals.sum()))

    rows = [(ex.pieces, ex.roles, w.tolist()) for ex, w in zip(examples, w_rows, strict=True)]
    bar_label = "total weight" if reduction == "sum" else "share of the loss"
    picture = canvas.picture("chat", ChatPicture)
    fig = picture.update(
        rows,
        [ex.template.tolist() for ex in examples],
        [m["role"] for m in msgs],
        totals.tolist(),
        ylabel=bar_label,
    )
    turn_rows = list(zip(msgs, totals.tolist(), strict=True))
    n_trained = int(sum(float((m == 1).sum()) for m in masks))
    text = "\n".join(
        [
            f"{len(examples)} example(s) of {[len(ex) for ex in examples]} tokens; {n_trained} "
            f"tokens trained with weight 1, the others weigh {float(prompt_weight):g} "
            f"({strategy}, {layout}, {reduction}).",
            "assistant turns' shares of the loss: " + ", ".join(f"{float(s):.3f}" for s in shares),
            f"bars ({bar_label} per turn): "
            + ", ".join(f"{k} {m['role']} {float(v):.3g}" for k, (m, v) in enumerate(turn_rows)),
        ]
    )
    data = {
        "examples": [len(ex) for ex in examples],
        "W": w_rows,
        "masks": masks,
        "turn_totals": totals,
        "assistant_shares": shares,
    }
    return View(figure=fig, text=text, data=data, png=canvas.png(picture))


def chat_explorer(**defaults) -> Explorer:
    """The explorer: display it in a notebook and move the controls."""
    style = {"description_width": "initial"}
    v = {
        "turns": 3,
        "user_lengths": "6",
        "assistant_lengths": "2, 8, 4",
        "system_length": 0,
        "strategy": "assistant",
        "prompt_weight": 0.0,
        "reduction": "token_mean",
        "layout": "masked",
        "train_end_of_turn": True,
    }
    v.update(defaults)
    controls = {
        "turns": W.IntSlider(v["turns"], 1, MAX_TURNS, description="turns", style=style),
        "user_lengths": W.Text(v["user_lengths"], description="user lengths", style=style),
        "assistant_lengths": W.Text(
            v["assistant_lengths"], description="assistant lengths", style=style
        ),
        "system_length": W.IntSlider(v["system_length"], 0, MAX_LENGTH, description="system"),
        "strategy": W.Dropdown(options=list(STRATEGIES), value=v["strategy"], description="train"),
        "prompt_weight": W.FloatSlider(
            v["prompt_weight"],
            min=0.0,
            max=1.0,
            step=0.05,
            description="prompt weight",
            style=style,
        ),
        "reduction": W.Dropdown(
            options=CHAT_REDUCTIONS, value=v["reduction"], description="reduction"
        ),
        "layout": W.ToggleButtons(options=TURN_LAYOUTS, value=v["layout"]),
        "train_end_of_turn": W.Checkbox(v["train_end_of_turn"], description="train <|im_end|>"),
    }
    for name in ("user_lengths", "assistant_lengths"):
        controls[name].continuous_update = False
    render = functools.partial(render_chat, canvas=Canvas())
    return Explorer(render, controls, height="460px", draw_ahead=True)
