"""A tiny transformers model from a config and a tokenizer built in memory: nothing is downloaded.

They exist so that the real trainers (transformers' ``Trainer``, TRL's ``GRPOTrainer`` and
``SFTTrainer``) can run one step here on a CPU in well under a second. Needs the ``trainers``
extra (transformers, tokenizers).
"""

from __future__ import annotations

__all__ = [
    "CHATML_TEMPLATE",
    "CHATML_TRAINING_TEMPLATE",
    "tiny_llama",
    "tiny_model",
    "tiny_tokenizer",
]

# ChatML, as Qwen's templates write it: each message, then the assistant header on generation
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# the same text, with the assistant's content and its <|im_end|> inside {% generation %} blocks:
# what ``return_assistant_tokens_mask`` (and so TRL's ``assistant_only_loss``) reads
CHATML_TRAINING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ("<pad>", "<|im_start|>", "<|im_end|>")


def tiny_tokenizer(words: tuple[str, ...] = (), chat_template: str | None = CHATML_TEMPLATE):
    """A ``PreTrainedTokenizerFast``: one token per whitespace-separated word, ``"\\n"`` and ChatML markers.

    Vocabulary: ``<pad>``, ``<|im_start|>``, ``<|im_end|>``, ``\\n``, the three roles, ``w0``..``w31`` and
    ``words``. ``<|im_end|>`` is the EOS token, ``<pad>`` the padding token.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    base = [*SPECIALS, "\n", "system", "user", "assistant"] + [f"w{i}" for i in range(32)]
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*base, *words]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    # words and single newlines are tokens; spaces only separate
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
            pre_tokenizers.Split(" ", behavior="removed"),
        ]
    )
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    out.chat_template = chat_template
    return out


# one shape for every tiny transformers model here: 1 layer, hidden 16, 2 heads (fast on a CPU)
_TINY_SHAPE = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}


def tiny_model(vocab_size: int, seed: int = 0, dtype=None):
    """A 1-layer Qwen2 causal LM (hidden 16) from a config, its weights drawn with ``seed``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        **_TINY_SHAPE,
        num_key_value_heads=1,
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    return model if dtype is None else model.to(dtype)


def tiny_llama(vocab_size: int, seed: int, **config):
    """A 1-layer Llama causal LM (hidden 16) from a config, after ``torch.manual_seed(seed)``.

    Seeds the global generator (not a forked one), as the transformers Trainer measurements and their
    cached version table were made. ``config``: other ``LlamaConfig`` fields (``pad_token_id``,
    ``initializer_range``, ...).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        **{**_TINY_SHAPE, "num_key_value_heads": 2, "max_position_embeddings": 2048, **config},
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)
