"""Known architectures built offline at random init (flan-t5-base, Qwen2.5-0.5B...), from bundled configs."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, PreTrainedModel

from sumlab.errors import SumlabError
from sumlab.models.family import auto_model_class, family_of
from sumlab.models.sources import expand_source, is_local, known_architectures


def untie_lm_head(model: PreTrainedModel) -> None:
    """Give ``lm_head`` its own weights, as FLAN-T5 (T5 v1.1) checkpoints have.

    transformers 5 always ties T5's lm_head to the shared embedding at construction, and unties it
    only when a checkpoint holds two different matrices; a random-init model must match that layout.
    """
    head = model.get_output_embeddings()
    if head is None or head.weight is not model.get_input_embeddings().weight:
        return
    std = model.config.initializer_factor
    head.weight = nn.Parameter(torch.randn_like(head.weight) * std)
    model.config.tie_word_embeddings = False


def build_random_model(name_or_path: str, seed: int = 0, family: str = "auto") -> PreTrainedModel:
    """A randomly initialised model (seq2seq or causal) with the architecture of ``name_or_path``.

    Known hub ids use the bundled configs (offline); a local directory's config.json is used as is.
    """
    architectures = known_architectures()
    if name_or_path in architectures:
        config_dict = json.loads(architectures[name_or_path].read_text())
        model_config = AutoConfig.for_model(**config_dict)
    elif is_local(name_or_path) and (Path(expand_source(name_or_path)) / "config.json").is_file():
        config_dict = json.loads((Path(expand_source(name_or_path)) / "config.json").read_text(encoding="utf-8-sig"))
        model_config = AutoConfig.from_pretrained(expand_source(name_or_path), trust_remote_code=False)
    else:
        known = ", ".join(sorted(architectures))
        raise SumlabError(
            f"no architecture config for {name_or_path!r} offline",
            f"use one of {known}, or a local directory with a config.json",
        )
    torch.manual_seed(seed)
    model = auto_model_class(family_of(model_config, family)).from_config(model_config)
    if config_dict.get("tie_word_embeddings") is False:
        untie_lm_head(model)
    return model
