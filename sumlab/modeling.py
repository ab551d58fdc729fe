"""Load models and tokenizers, build known architectures at random init, add PEFT, count parameters."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    ByT5Tokenizer,
    PretrainedConfig,
    PreTrainedModel,
)

from sumlab.config import Family, ModelConfig, PeftSettings, Precision
from sumlab.errors import SumlabError

log = logging.getLogger(__name__)

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameters, as the lab prints them."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def to_json(self) -> dict:
        return {"trainable": self.trainable, "total": self.total, "percent": round(self.percent, 4)}

    def __str__(self) -> str:
        return (
            f"trainable model parameters: {self.trainable}\n"
            f"all model parameters: {self.total}\n"
            f"percentage of trainable model parameters: {self.percent:.2f}%"
        )


def known_architectures() -> dict[str, Path]:
    """Bundled configs of known architectures, by hub id (``google--flan-t5-base.json`` is ``google/flan-t5-base``)."""
    folder = resources.files("sumlab") / "architectures"
    return {entry.name.removesuffix(".json").replace("--", "/", 1): Path(str(entry)) for entry in folder.iterdir()
            if entry.name.endswith(".json")}


BUNDLED_MODELS = {"sumlab-tiny-t5": "demo/sumlab-tiny-t5"}  # shipped inside the package


def resolve_bundled(name_or_path: str) -> str:
    """The package path of a bundled model name (``sumlab-tiny-t5``); any other name unchanged."""
    if name_or_path in BUNDLED_MODELS:
        return str(resources.files("sumlab") / BUNDLED_MODELS[name_or_path])
    return name_or_path


def pick_device() -> torch.device:
    """CUDA when present, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(precision: Precision, model_type: str = "t5") -> torch.dtype:
    """The torch dtype for ``precision``: ``auto`` is bf16 on a GPU that supports it, fp32 otherwise."""
    if precision == "float16" and model_type in {"t5", "mt5", "umt5"}:
        raise SumlabError(
            "float16 is refused for T5 models: T5's activations overflow fp16's range and give NaN/inf",
            "use bfloat16 on a GPU that supports it, or float32",
        )
    if precision == "auto":
        bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16_ok else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def is_local(name_or_path: str) -> bool:
    """True when ``name_or_path`` names a local path rather than a hub id."""
    if name_or_path in BUNDLED_MODELS:
        return True
    return os.path.exists(name_or_path) or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1


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


def load_tokenizer(config: ModelConfig):
    """The tokenizer named in ``config`` (its own, or the model's; ByT5's bytes for a bare random init)."""
    source = config.tokenizer or config.name_or_path
    if config.tokenizer is None and config.random_init and not is_local(source):
        log.info("no tokenizer for random-init %s offline: using the byte-level ByT5 tokenizer", source)
        return ByT5Tokenizer()
    _check_local_exists(source, "tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(_expand(source), trust_remote_code=False)
    except OSError as exc:
        raise SumlabError(f"could not load the tokenizer {source!r}: {_first_line(exc)}", _hub_hint(source)) from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 and Llama tokenizers have none; padding is masked anyway
    return tokenizer


def family_of(hf_config: PretrainedConfig, requested: str = "auto") -> Family:
    """``seq2seq`` for an encoder-decoder config, ``causal`` for a decoder-only one, unless ``requested`` says."""
    if requested != "auto":
        return requested  # type: ignore[return-value]
    return "seq2seq" if getattr(hf_config, "is_encoder_decoder", False) else "causal"


def model_family(config: ModelConfig) -> Family:
    """The family of ``config``'s model, read from its config alone (no weights are loaded)."""
    if config.family != "auto":
        return config.family
    return family_of(architecture_config(config.name_or_path))


def architecture_config(name_or_path: str) -> PretrainedConfig:
    """The transformers config of a model: a bundled architecture, a local directory or a hub id."""
    architectures = known_architectures()
    if name_or_path in architectures:
        return AutoConfig.for_model(**json.loads(architectures[name_or_path].read_text()))
    _check_local_exists(name_or_path, "model")
    try:
        return AutoConfig.from_pretrained(_expand(name_or_path), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise SumlabError(f"could not read the config of {name_or_path!r}: {_first_line(exc)}", _hub_hint(name_or_path)) from None


def auto_model_class(family: Family):
    return AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM


def load_model(config: ModelConfig, device: torch.device | None = None) -> PreTrainedModel:
    """Load the seq2seq model of ``config`` (or build it at random init), in its dtype, on ``device``."""
    if config.random_init:
        model = build_random_model(config.name_or_path, family=config.family)
        model = model.to(resolve_dtype(config.dtype, model.config.model_type))
    else:
        model = load_pretrained(config.name_or_path, config.dtype, config.allow_pickle, family=config.family)
    return model.to(device or pick_device())


def load_pretrained(name_or_path: str, precision: Precision, allow_pickle: bool = False,
                    family: str = "auto") -> PreTrainedModel:
    """``from_pretrained`` (seq2seq or causal) with safetensors by default and never remote code."""
    _check_local_exists(name_or_path, "model")
    source = _expand(name_or_path)
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
        raise SumlabError(f"could not load the model {name_or_path!r}: {_first_line(exc)}", _hub_hint(name_or_path)) from None
    if name_or_path in BUNDLED_MODELS:
        model.config.name_or_path = name_or_path  # adapters then record the portable name, not a site-packages path
    if model.get_output_embeddings() is not None and (
        model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    ):
        # transformers 5's T5Config says tie_word_embeddings=True even when the checkpoint's lm_head was
        # loaded as its own matrix; left so, tie_weights() or resize_token_embeddings() would overwrite
        # lm_head with the embedding, and a saved config.json would tell transformers 4 to tie (and rescale).
        model.config.tie_word_embeddings = False
    return model


def build_random_model(name_or_path: str, seed: int = 0, family: str = "auto") -> PreTrainedModel:
    """A randomly initialised model (seq2seq or causal) with the architecture of ``name_or_path``.

    Known hub ids use the bundled configs (offline); a local directory's config.json is used as is.
    """
    architectures = known_architectures()
    if name_or_path in architectures:
        config_dict = json.loads(architectures[name_or_path].read_text())
        model_config = AutoConfig.for_model(**config_dict)
    elif is_local(name_or_path) and (Path(_expand(name_or_path)) / "config.json").is_file():
        config_dict = json.loads((Path(_expand(name_or_path)) / "config.json").read_text())
        model_config = AutoConfig.from_pretrained(_expand(name_or_path), trust_remote_code=False)
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


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameters; shared (tied) tensors count once."""
    seen: dict[int, nn.Parameter] = {}
    for parameter in model.parameters():
        seen.setdefault(id(parameter), parameter)
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return ParameterCount(trainable=trainable, total=total)


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes taken by the weight files under ``path`` (a file or a directory)."""
    target = Path(path)
    if target.is_file():
        return target.stat().st_size
    suffixes = {".safetensors", ".bin"}
    return sum(f.stat().st_size for f in target.rglob("*") if f.is_file() and f.suffix in suffixes)


def add_peft(model: PreTrainedModel, settings: PeftSettings) -> nn.Module:
    """Wrap ``model`` for ``settings.method``; ``full`` returns the model itself, all of it trainable."""
    if settings.method == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    from sumlab.peft_methods import build_peft_config

    peft_config = build_peft_config(settings, model)
    return get_peft_model(model, peft_config)


def _check_local_exists(name_or_path: str, what: str) -> None:
    if is_local(name_or_path) and not Path(_expand(name_or_path)).exists():
        raise SumlabError(f"{what} path not found: {name_or_path}", "check the path, or give a hub id")


def _expand(name_or_path: str) -> str:
    return os.path.expanduser(resolve_bundled(name_or_path))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _hub_hint(name_or_path: str) -> str:
    if is_local(name_or_path):
        return "check that the directory holds a saved model (config.json and safetensors weights)"
    return "no hub access? pass a local model directory, or --random-init for a known architecture"
