"""Load models and tokenizers, build known architectures at random init, add PEFT, count parameters."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    ByT5Tokenizer,
    PreTrainedModel,
)

from sumlab.config import ModelConfig, Precision
from sumlab.errors import SumlabError, first_line
from sumlab.models.family import auto_model_class, family_of
from sumlab.models.random_init import build_random_model
from sumlab.models.resolve import find_saved_model, has_tokenizer, resolve_model_source
from sumlab.models.sources import (
    BUNDLED_MODELS,
    check_local_exists,
    expand_source,
    hub_hint,
    is_local,
)
from sumlab.runtime.paths import local_path
from sumlab.runtime.precision import has_native_bf16, refuse_float16_for_t5, warn_if_emulated_bf16

log = logging.getLogger(__name__)

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")


def pick_device() -> torch.device:
    """CUDA when present, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(precision: Precision, model_type: str = "t5") -> torch.dtype:
    """The dtype to load the weights in for ``precision``: ``auto`` is bf16 on a GPU that supports it, else fp32.

    On a CPU, ``auto`` keeps float32 weights even where the CPU has bf16 instructions: generation and training
    then compute in bf16 under autocast (``sumlab.runtime.precision``), which keeps the weights exact. An explicit
    ``bfloat16`` loads bf16 weights on any device, with a warning where bf16 is only emulated.
    """
    refuse_float16_for_t5(precision, model_type)
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and has_native_bf16("cuda") else torch.float32
    if precision == "bfloat16":
        warn_if_emulated_bf16()
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def check_weight_format(directory: Path, allow_pickle: bool) -> None:
    """Refuse a local model directory that has only pickle weights, unless pickle is allowed."""
    if any((directory / name).exists() for name in SAFE_WEIGHTS):
        return
    if any((directory / name).exists() for name in PICKLE_WEIGHTS):
        if allow_pickle:
            log.warning("loading pickle weights from %s: only do this for files you trust", directory)
            return
        raise SumlabError(
            f"{directory} has only pickle (.bin) weights, which can run code when loaded",
            "convert them to safetensors, or pass --allow-pickle if you trust the files",
        )
    raise SumlabError(f"{directory} holds no model weights", "point to a directory with model.safetensors")


def load_tokenizer(config: ModelConfig):
    """The tokenizer of ``config``: ``tokenizer`` if given, else the model's (a run's or an adapter's own).

    A bare random init of a hub architecture gets ByT5's bytes. Raises a SumlabError for a local model
    directory that saved no tokenizer.
    """
    source = config.tokenizer or config.name_or_path
    if config.tokenizer is None and config.random_init and not is_local(source):
        log.info("no tokenizer for random-init %s offline: using the byte-level ByT5 tokenizer", source)
        return ByT5Tokenizer()
    check_local_exists(source, "tokenizer")
    source = tokenizer_source(source, given=config.tokenizer is not None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(expand_source(source), trust_remote_code=False)
    except OSError as exc:
        raise SumlabError(f"could not load the tokenizer {source!r}: {first_line(exc)}", hub_hint(source)) from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 and Llama tokenizers have none; padding is masked anyway
    return tokenizer


def tokenizer_source(name_or_path: str, given: bool = False) -> str:
    """Where the tokenizer of ``name_or_path`` is: the directory itself when it holds one, else as resolved.

    A run directory's tokenizer is in its ``model/``, an adapter's in its own directory or else its base's.
    ``given``: the name came from ``--tokenizer`` (``model.tokenizer``), which may be a tokenizer alone.
    """
    path = local_path(name_or_path)
    if path is not None and has_tokenizer(path):
        return name_or_path
    if given and path is not None and find_saved_model(path).kind == "other":
        raise SumlabError(
            f"{path}: no tokenizer.json or tokenizer_config.json found",
            "give --tokenizer a directory that holds a tokenizer, a run directory, or a hub id",
        )
    source = resolve_model_source(name_or_path)
    if source.tokenizer is None:
        raise SumlabError(
            f"{source.weights}: a model directory without a tokenizer: no tokenizer.json or tokenizer_config.json",
            "pass --tokenizer, or set model.tokenizer in a config, to the tokenizer the model was trained with",
        )
    return source.tokenizer


def load_model(config: ModelConfig, device: torch.device | None = None) -> PreTrainedModel:
    """Load the model of ``config`` (or build it at random init), in its dtype, on ``device``.

    ``name_or_path`` may be a hub id, a bundled name, a model directory, an adapter directory (loaded on the
    base it records, for inference) or a run directory (its ``model/``): ``resolve_model_source`` says which.
    """
    if config.random_init:
        model = build_random_model(config.name_or_path, family=config.family)
        model = model.to(resolve_dtype(config.dtype, model.config.model_type))
    else:
        source = resolve_model_source(config.name_or_path)
        model = load_pretrained(source.weights, config.dtype, config.allow_pickle, family=config.family)
        if source.adapter is not None:
            from sumlab.models.adapters import attach_adapter  # adapters.py imports this module

            model = attach_adapter(model, source.adapter, allow_pickle=config.allow_pickle)
    return model.to(device or pick_device())


def load_pretrained(
    name_or_path: str, precision: Precision, allow_pickle: bool = False, family: str = "auto"
) -> PreTrainedModel:
    """``from_pretrained`` (seq2seq or causal) with safetensors by default and never remote code."""
    check_local_exists(name_or_path, "model")
    source = expand_source(name_or_path)
    if is_local(name_or_path):
        check_weight_format(Path(source), allow_pickle)
    try:
        hf_config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        dtype = resolve_dtype(precision, hf_config.model_type)
        model = auto_model_class(family_of(hf_config, family)).from_pretrained(
            source, dtype=dtype, use_safetensors=None if allow_pickle else True, trust_remote_code=False
        )
    except SumlabError:
        raise
    except (OSError, ValueError) as exc:
        raise SumlabError(
            f"could not load the model {name_or_path!r}: {first_line(exc)}", hub_hint(name_or_path)
        ) from None
    set_portable_name(model, name_or_path)
    if model.get_output_embeddings() is not None and (
        model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    ):
        # transformers 5's T5Config says tie_word_embeddings=True even when the checkpoint's lm_head was
        # loaded as its own matrix; left so, tie_weights() or resize_token_embeddings() would overwrite
        # lm_head with the embedding, and a saved config.json would tell transformers 4 to tie (and rescale).
        model.config.tie_word_embeddings = False
    return model


def portable_model_name(name_or_path: str) -> str:
    """The name to record for a base model: a hub id or bundled name as given, a local directory's absolute path."""
    if name_or_path in BUNDLED_MODELS or not is_local(name_or_path):
        return name_or_path
    return str(Path(expand_source(name_or_path)).resolve())


def set_portable_name(model, name_or_path: str) -> None:
    """Make ``model`` remember the portable name it was loaded by (``portable_model_name``).

    PEFT records ``model.name_or_path`` (not ``model.config.name_or_path``) as an adapter's
    ``base_model_name_or_path`` when it wraps the model; transformers sets both to the path it loaded from,
    which for the bundled demo base is a path inside this installation.
    """
    name = portable_model_name(name_or_path)
    model.name_or_path = name
    model.config.name_or_path = name
