"""TRL 1.16.0's SFTTrainer measured: one real step (tiny Qwen2 from a config, tokenizer in memory), each
label's weight read as -dL/d logp (what lv.probe reads from logits; TRL's fused LM head builds none).

Masks are compared with lossviz.chat token by token: the in-memory tokenizer splits the conversations
below into the same tokens as lossviz's tokenizer (minus its dummy-prefix token). Weights are float32
gradients of a token mean 1/N (N <= 16 here): 1e-7 bounds their rounding (about 1 float32 ulp of 1/N).
"""

import pytest
import torch

from lossviz import chat
from lossviz.trainers.tiny import CHATML_TRAINING_TEMPLATE
from lossviz.trainers.trl_sft import SFTMeter

TOL = 1e-7  # float32 gradient of 1/N, N <= 16 (see the module docstring)
CHAT = [
    {"role": "user", "content": "the cat sat"},
    {"role": "assistant", "content": "then it ran"},
    {"role": "user", "content": "and then"},
    {"role": "assistant", "content": "far away a cat sat on the mat"},
]
PROMPT_COMPLETION = [
    {"prompt": "the cat sat", "completion": " on a mat"},
    {"prompt": "and then", "completion": " it ran far away"},
]
TEXT = [{"text": "the cat sat on a mat"}, {"text": "and then it ran"}]


@pytest.fixture(scope="module")
def meter():
    return SFTMeter()


@pytest.fixture(scope="module")
def steps(meter):
    """Every configuration once (about 0.7 s each)."""
    return {
        "completion_only": meter.run(PROMPT_COMPLETION),
        "assistant_only": meter.run(
            [{"messages": CHAT}], CHATML_TRAINING_TEMPLATE, assistant_only_loss=True
        ),
        "all_tokens": meter.run([{"messages": CHAT}]),
        "chat_completion": meter.run(
            [{"prompt": CHAT[:1], "completion": CHAT[1:2]}], CHATML_TRAINING_TEMPLATE
        ),
        "padded": meter.run(TEXT),
        "packed": meter.run(TEXT, packing=True),
        "padding_free": meter.run(TEXT, padding_free=True, max_length=None),
        "dft": meter.run(PROMPT_COMPLETION, loss_type="dft", bf16=False),
        "dft_bf16": meter.run(PROMPT_COMPLETION, loss_type="dft"),  # SFTConfig's default
    }


def assert_token_mean(step):
    """W = 1/N on every trained label, 0 elsewhere."""
    n = int(step.trained.sum())
    torch.testing.assert_close(step.W, step.trained.double() / n, rtol=0, atol=TOL)


def lossviz_mask(messages, strategy):
    """lossviz.chat's mask on the same tokens (its first piece is the dummy prefix)."""
    return chat.loss_mask(chat.tokenize(messages), strategy, train_end_of_turn=True)[1:].bool()


def test_completion_only_loss_trains_the_completion_and_the_eos(meter, steps):
    s = steps["completion_only"]
    assert_token_mean(s)
    trained = [meter.tokens(ids[m]) for ids, m in zip(s.input_ids, s.trained, strict=True)]
    assert trained == [["on", "a", "mat", "<|im_end|>"], ["it", "ran", "far", "away", "<|im_end|>"]]


def test_assistant_only_loss_equals_lossviz_assistant_mask(meter, steps):
    s = steps["assistant_only"]
    assert meter.tokens(s.input_ids[0]) == [p.lstrip("▁") for p in chat.tokenize(CHAT).pieces[1:]]
    assert torch.equal(s.trained[0], lossviz_mask(CHAT, "assistant"))
    assert_token_mean(s)  # both assistant turns, each with its <|im_end|>: 3 + 1 and 8 + 1 tokens
    assert int(s.trained.sum()) == 13


def test_without_assistant_only_loss_every_token_is_trained(steps):
    s = steps["all_tokens"]
    assert torch.equal(s.trained[0], lossviz_mask(CHAT, "all") & (torch.arange(s.W.shape[1]) > 0))
    assert_token_mean(s)


def test_conversational_completion_only_also_trains_the_newline_after_im_end(meter, steps):
    """prompt-completion chats: the completion is everything after the generation prompt, '\\n' included."""
    s = steps["chat_completion"]
    assert meter.tokens(s.input_ids[0][s.trained[0]]) == ["then", "it", "ran", "<|im_end|>", "\n"]
    assistant = lossviz_mask(CHAT[:2], "assistant")
    assert int(s.trained.sum()) == int(assistant.sum()) + 1  # lossviz stops at <|im_end|>


def test_a_template_without_generation_blocks_is_refused(meter):
    """The empty-mask pitfall (TRL PR 4201): TRL 1.16.0 raises instead of training on nothing."""
    with pytest.raises(ValueError, match="not training-compatible"):
        meter.run(
            [{"messages": CHAT}], assistant_only_loss=True
        )  # plain ChatML, no {% generation %}
    with pytest.raises(
        RuntimeError, match="no assistant tokens"
    ):  # a chat without an assistant turn
        meter.run([{"messages": CHAT[:1]}], CHATML_TRAINING_TEMPLATE, assistant_only_loss=True)


@pytest.mark.parametrize("mode", ["packed", "padding_free"])
def test_packing_masks_each_boundary_and_keeps_the_token_mean(steps, mode):
    s, padded = steps[mode], steps["padded"]
    starts = s.position_ids[0] == 0
    assert int(starts.sum()) == 2 and not s.trained[0][starts].any()  # no label across a boundary
    assert_token_mean(s)
    # each sample's share is (n_i - 1) / N, exactly as in the padded batch: packing changes no weight
    share = [
        float(seg.sum())
        for seg in torch.tensor_split(s.W[0], starts.nonzero().flatten()[1:].tolist())
    ]
    assert share == pytest.approx([float(row.sum()) for row in padded.W], abs=TOL)
    assert share == pytest.approx([6 / 10, 4 / 10], abs=TOL)


def test_dft_weighs_each_token_by_its_own_probability(meter, steps):
    """loss_type="dft": L = sum_t -sg(p_t) log p_t / N, so W_t = p_t / N (p_t: the model's probability),
    which is lossviz.token_gradients.dft_weights on the logits of the same model and batch."""
    from lossviz import shift_labels, token_gradients
    from lossviz.trainers.tiny import tiny_model

    s, nll = steps["dft"], steps["completion_only"]
    assert torch.equal(s.trained, nll.trained)
    n = int(s.trained.sum())
    torch.testing.assert_close(s.W, s.p * s.trained / n, rtol=1e-6, atol=TOL)
    logits = tiny_model(len(meter.tokenizer), seed=meter.seed)(input_ids=s.input_ids).logits
    # lossviz's weights sit at the logits' positions, the measured ones at the labels'
    w = token_gradients.dft_weights(logits, shift_labels(s.labels)).double()
    torch.testing.assert_close(s.W[:, 1:], w[:, :-1], rtol=1e-5, atol=TOL)  # float32: seen 2e-7
    # a tiny untrained model: p ~ 1/V, far below 1
    assert float(s.W.sum()) < 0.5 * float(nll.W.sum())


def test_sft_runs_under_bf16_autocast_by_default_even_on_a_cpu(steps):
    """SFTConfig(bf16=True) is TRL 1.16.0's default: DFT's p (and every logit) carries bf16 rounding."""
    import trl

    assert trl.SFTConfig(output_dir="unused", use_cpu=True, report_to=[]).bf16 is True
    exact, default = steps["dft"], steps["dft_bf16"]
    rel = ((default.W - exact.W).abs() / exact.W.clamp_min(1e-12))[exact.trained]
    assert 1e-5 < float(rel.max()) < 1e-2  # seen 3e-4: bf16 matmuls, float32 softmax


def test_the_probe_reads_the_same_weights_from_the_logits(meter, steps):
    """W = -dL/d logp (TRL's fused head) is what lv.probe recovers from the logits of the same batch."""
    import lossviz as lv
    from lossviz.trainers.tiny import tiny_model

    s = steps["completion_only"]
    model = tiny_model(len(meter.tokenizer), seed=meter.seed)  # the meter's weights (same seed)
    with lv.probe(model) as rec:
        model(input_ids=s.input_ids, labels=s.labels).loss.backward()  # transformers' token mean
    assert rec.is_cross_entropy()
    torch.testing.assert_close(rec.W(step=0), s.W, rtol=0, atol=TOL)


def test_trl_patches_a_known_template_and_its_span_holds_two_newlines_more(meter):
    """Qwen2.5's template has no generation blocks; TRL 1.16.0 swaps in its training variant, whose span is
    '\\n' + content + '<|im_end|>\\n': two newlines per assistant turn beyond lossviz's assistant mask."""
    from trl.chat_template_utils import has_generation_markers, qwen2_5_chat_template

    assert not has_generation_markers(qwen2_5_chat_template)
    messages = [{"role": "system", "content": "the cat"}, *CHAT]  # a system turn: no default text
    s = meter.run([{"messages": messages}], qwen2_5_chat_template, assistant_only_loss=True)
    trained = meter.tokens(s.input_ids[0][s.trained[0]])
    assert trained == ["\n", "then", "it", "ran", "<|im_end|>", "\n"] + [
        "\n",
        *"far away a cat sat on the mat".split(),
        "<|im_end|>",
        "\n",
    ]
    assert len(trained) == int(lossviz_mask(messages, "assistant").sum()) + 2 * 2
    assert_token_mean(s)
