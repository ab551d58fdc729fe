"""Which family a model belongs to: encoder-decoder (T5) or decoder-only (Llama, Qwen, GPT-2)."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig

from sumlab.config import Family, ModelConfig
from sumlab.models.resolve import resolve_model_source
from sumlab.models.sources import architecture_config


def family_of(hf_config: PretrainedConfig, requested: str = "auto") -> Family:
    """``seq2seq`` for an encoder-decoder config, ``causal`` for a decoder-only one, unless ``requested`` says."""
    if requested != "auto":
        return requested  # type: ignore[return-value]
    return "seq2seq" if getattr(hf_config, "is_encoder_decoder", False) else "causal"


def model_family(config: ModelConfig) -> Family:
    """The family of ``config``'s model, read from its config alone (no weights are loaded).

    An adapter or a run directory has its model's family (an adapter's base's).
    """
    if config.family != "auto":
        return config.family
    weights = config.name_or_path if config.random_init else resolve_model_source(config.name_or_path).weights
    return family_of(architecture_config(weights))


def is_causal(model) -> bool:
    """True for a decoder-only model (plain or PEFT-wrapped), False for an encoder-decoder."""
    return family_of(model.config) == "causal"


def auto_model_class(family: Family):
    """The transformers auto class that loads or builds a model of ``family``."""
    return AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
