"""A tiny transformers model from a config and a tokenizer built in memory: nothing is downloaded.

They exist so that the real trainers (transformers' ``Trainer``, TRL's ``GRPOTrainer`` and
``SFTTrainer``) can run one step here on a CPU in well under a second. Needs the ``trainers``
extra (transformers, tokenizers).
"""

from __future__ import annotations

__all__ = [
    "CHATML_TEMPLATE",
    "CHATML_TRAINING_TEMPLATE",
    "IMAGE_TOKENS",
    "tiny_llama",
    "tiny_model",
    "tiny_moe",
    "tiny_tokenizer",
    "tiny_vlm",
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


# the vision-language models' special ids sit above the 64 text ids the measured samples draw
IMAGE_TOKENS = {
    "image_token_id": 64,
    "video_token_id": 65,
    "vision_start_token_id": 66,
    "vision_end_token_id": 67,
}
VLM_CLASSES = ("qwen2_5_vl", "qwen2_vl")


def tiny_vlm(seed: int, kind: str = "qwen2_5_vl"):
    """A 1-layer Qwen2.5-VL (or Qwen2-VL) from a config, after ``torch.manual_seed(seed)``.

    Text vocabulary 72: ids 0..63 are text, 64..67 the image/video markers (:data:`IMAGE_TOKENS`).
    Vision tower: 1 block, hidden 16, 2x2 patches, no spatial merge (an image of ``g`` patches
    takes ``g`` image tokens). ``kind``: ``"qwen2_5_vl"`` (declares ``accepts_loss_kwargs = False``
    in transformers 5.24) or ``"qwen2_vl"`` (only its inner ``Qwen2VLModel`` does).
    """
    import torch
    import transformers

    if kind not in VLM_CLASSES:
        raise ValueError(f"kind must be one of {VLM_CLASSES}, got {kind!r}")
    text = {
        **_TINY_SHAPE,
        "vocab_size": 72,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
        "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},  # head dim 8: 4 pairs
        "tie_word_embeddings": False,
        "pad_token_id": 0,
        "bos_token_id": None,
        "eos_token_id": 2,
    }
    vision = {
        "depth": 1,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_heads": 2,
        "patch_size": 2,
        "spatial_merge_size": 1,
        "temporal_patch_size": 1,
        "in_channels": 3,
    }
    if kind == "qwen2_5_vl":
        config_class = transformers.Qwen2_5_VLConfig
        model_class = transformers.Qwen2_5_VLForConditionalGeneration
        vision.update(out_hidden_size=16, window_size=4, fullatt_block_indexes=[0])
    else:
        config_class = transformers.Qwen2VLConfig
        model_class = transformers.Qwen2VLForConditionalGeneration
        vision.update(embed_dim=16, hidden_size=16, mlp_ratio=2)
    cfg = config_class(text_config=text, vision_config=vision, **IMAGE_TOKENS)
    torch.manual_seed(seed)
    return model_class(cfg)


def tiny_moe(vocab_size: int, seed: int, router_aux_loss_coef: float = 0.0, experts: int = 4):
    """A 1-layer Mixtral (``experts`` experts, 2 per token, hidden 16) returning its router aux loss.

    ``output_router_logits=True``: its ``forward`` adds ``router_aux_loss_coef * aux_loss`` to the
    cross-entropy when given labels. After ``torch.manual_seed(seed)``, as :func:`tiny_llama`.
    """
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    cfg = MixtralConfig(
        vocab_size=vocab_size,
        **_TINY_SHAPE,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        num_local_experts=experts,
        num_experts_per_tok=2,
        output_router_logits=True,
        router_aux_loss_coef=router_aux_loss_coef,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return MixtralForCausalLM(cfg)
