"""A 4-bit base model for QLoRA (CUDA and bitsandbytes only)."""

from __future__ import annotations

import torch

from sumlab.config import ModelConfig
from sumlab.errors import SumlabError


def load_4bit_model(config: ModelConfig):
    """Load the base in 4-bit NF4 with bf16 compute, prepared for k-bit training."""
    if not torch.cuda.is_available():
        raise SumlabError("4-bit loading needs a CUDA GPU", "use method lora on this machine")
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise SumlabError("qlora needs the bitsandbytes package", "pip install bitsandbytes") from None
    from peft import prepare_model_for_kbit_training

    from sumlab.models.family import model_family
    from sumlab.models.loading import auto_model_class, set_portable_name
    from sumlab.models.sources import resolve_bundled

    if config.random_init:
        raise SumlabError("qlora quantizes pretrained weights; random init makes no sense here", "use lora")
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = auto_model_class(model_family(config)).from_pretrained(
        resolve_bundled(config.name_or_path),
        quantization_config=quantization,
        use_safetensors=True,
        trust_remote_code=False,
    )
    set_portable_name(model, config.name_or_path)  # what its adapters record as their base
    return prepare_model_for_kbit_training(model)
