"""Tiny tokenizers and models (T5, Llama, GPT-2) built on the spot, for tests, benchmarks and the demo's base model."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from sumlab.models.random_init import untie_lm_head

SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]  # T5's ids: pad 0, eos 1, unk 2


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000, causal: bool = False) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with T5's special tokens; it appends </s> like T5's.

    With ``causal``, it has a <s> (id 3) and puts it first instead, as Llama's does.
    Byte-level BPE keeps every character, newlines between turns included, so decoding is lossless.
    """
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + (["<s>"] if causal else []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    if causal:
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 3)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=backend,
            pad_token="<pad>",
            eos_token="</s>",
            unk_token="<unk>",
            bos_token="<s>",
            model_max_length=1024,
        )
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def build_tiny_t5(
    vocab_size: int,
    *,
    d_model: int = 64,
    d_ff: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> T5ForConditionalGeneration:
    """A randomly initialised T5 v1.1 (gated-GELU, untied lm_head, like FLAN-T5) of the given size."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=d_ff,
        num_layers=num_layers,
        num_heads=num_heads,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        decoder_start_token_id=0,
        dropout_rate=0.0,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    untie_lm_head(model)
    return model


def build_tiny_llama(
    vocab_size: int, *, hidden_size: int = 32, num_layers: int = 2, num_heads: int = 4, seed: int = 0
) -> LlamaForCausalLM:
    """A randomly initialised Llama of the given size, with the tiny causal tokenizer's ids (pad 0, eos 1, bos 3)."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=3,
        tie_word_embeddings=False,
        initializer_range=0.2,  # wider than 0.02, as a trained model's weights are: small changes then show
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def build_tiny_gpt2(
    vocab_size: int, *, hidden_size: int = 32, num_layers: int = 2, num_heads: int = 4, seed: int = 0
) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 of the given size (no dropout), with the tiny causal tokenizer's ids."""
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=hidden_size,
        n_layer=num_layers,
        n_head=num_heads,
        n_positions=1024,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=3,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)
