"""Attach saved PEFT adapters to a base model, and merge them into standalone models."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from sumlab.config import ModelConfig
from sumlab.errors import SumlabError
from sumlab.models.family import is_causal
from sumlab.models.loading import check_weight_format, load_model, load_tokenizer
from sumlab.models.resolve import (
    adapter_base_name,
    find_saved_model,
    has_tokenizer,
    read_adapter_config,
)
from sumlab.runtime.paths import missing_local_path

MERGE_TOLERANCE = 1e-4
PROBE_TEXT = "#Person1#: Could you book a table for two at seven?\n#Person2#: Of course. Under which name?"


def resolve_adapter_dir(path: str | Path) -> Path:
    """The adapter directory of ``path``: the directory itself, or the ``model/`` of a run directory."""
    found = find_saved_model(path)
    if found.kind == "adapter":
        return found.directory
    hint = "give a PEFT run directory or an adapter directory"
    if found.kind == "missing":
        raise SumlabError(f"adapter path not found: {found.directory}", hint)
    if found.kind == "model":
        raise SumlabError(f"no adapter_config.json in {found.directory}: it holds a full model", hint)
    raise SumlabError(f"no adapter_config.json in {found.directory} (nor in its model/)", hint)


def adapter_base_model(adapter_dir: Path) -> str:
    """The base model an adapter was trained on, as its adapter_config.json records it (see ``adapter_base_name``)."""
    return adapter_base_name(adapter_dir)


def attach_adapter(base_model, adapter_path: str | Path, name: str = "default", allow_pickle: bool = False):
    """Load the adapter at ``adapter_path`` onto ``base_model`` (or onto a PeftModel, as one more adapter).

    Raises a SumlabError when the adapter doesn't fit the base (other shapes or missing modules).
    """
    from peft import PeftModel

    adapter_dir = resolve_adapter_dir(adapter_path)
    check_weight_format(adapter_dir, allow_pickle)
    plain_base = base_model.get_base_model() if isinstance(base_model, PeftModel) else base_model
    try:
        _check_prompt_dimensions(adapter_dir, plain_base.config)
        if isinstance(base_model, PeftModel):
            base_model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            model = base_model
        else:
            model = PeftModel.from_pretrained(base_model, str(adapter_dir), adapter_name=name, is_trainable=False)
        _check_all_weights_loaded(model, adapter_dir, name)
        return model
    except (RuntimeError, ValueError, KeyError) as exc:
        raise SumlabError(
            f"the adapter in {adapter_dir} does not fit this base model: {_reason(exc)}",
            f"load it onto the model it was trained on ({adapter_base_model(adapter_dir) or 'see adapter_config.json'})",
        ) from None


def _reason(exc: BaseException, limit: int = 400) -> str:
    """The reason of ``exc`` on one line: torch's "Error(s) ...:" header and the count and first of its problems."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    if len(lines) > 2 and lines[0].endswith(":"):
        text = f"{lines[0]} {len(lines) - 1} problems, the first: {lines[1]}"
    else:
        text = " ".join(lines)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_prompt_dimensions(adapter_dir: Path, base_config) -> None:
    """Prefix and prompt tuning adapters record the width (and depth) they were built for; PEFT doesn't check them."""
    config = read_adapter_config(adapter_dir)
    expected = {"token_dim": getattr(base_config, "hidden_size", None)}
    if config.get("peft_type") == "PREFIX_TUNING":  # one key/value prefix per layer and head
        expected["num_layers"] = getattr(base_config, "num_hidden_layers", None)
        expected["num_attention_heads"] = getattr(base_config, "num_attention_heads", None)
    for key, value in expected.items():
        if config.get(key) is not None and value is not None and config[key] != value:
            raise ValueError(f"the adapter has {key}={config[key]}, the base model {value}")


def _check_all_weights_loaded(model, adapter_dir: Path, name: str) -> None:
    """Raise if saved adapter weights found no module to go into (PEFT only warns, and drops them)."""
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        return
    with safe_open(str(weights), framework="pt") as handle:
        saved = set(handle.keys())
    unused = sorted(saved - set(get_peft_model_state_dict(model, adapter_name=name)))
    if unused:
        raise ValueError(f"{len(unused)} adapter weights match no module of the base, e.g. {unused[0]}")


def is_quantized(model) -> bool:
    """True for a model loaded in 8 or 4 bits."""
    return bool(
        getattr(model, "is_loaded_in_4bit", False)
        or getattr(model, "is_loaded_in_8bit", False)
        or getattr(model, "quantization_config", None)
        or getattr(model.config, "quantization_config", None)
    )


@torch.inference_mode()
def probe_logits(model, tokenizer, text: str = PROBE_TEXT, **extra) -> torch.Tensor:
    """Logits for a fixed text (and, for a seq2seq model, a short decoder prefix): enough to compare two versions."""
    device = next(model.parameters()).device
    inputs = tokenizer([text], return_tensors="pt").to(device)
    if is_causal(model):
        return model(**inputs, **extra).logits.float().cpu()
    start = model.config.decoder_start_token_id or 0
    decoder_ids = torch.tensor([[start] + inputs["input_ids"][0, :7].tolist()], device=device)
    return model(**inputs, decoder_input_ids=decoder_ids, **extra).logits.float().cpu()


def merge_adapter(adapter: str | Path, out: str | Path, *, base: str | None = None, allow_pickle: bool = False) -> dict:
    """Merge the adapter into its base, check the merged logits equal the unmerged ones, and save the result."""
    from peft import PeftConfig

    adapter_dir = resolve_adapter_dir(adapter)
    if PeftConfig.from_pretrained(str(adapter_dir)).is_prompt_learning:
        raise SumlabError(
            f"the adapter in {adapter_dir} is prefix or prompt tuning: it adds virtual tokens, not weights to merge",
            "serve it unmerged, attached to its base model",
        )
    base_name = base or adapter_base_model(adapter_dir)
    if not base_name:
        raise SumlabError(f"{adapter_dir} does not record its base model", "pass --model BASE")
    if base is None and missing_local_path(base_name) is not None:
        raise SumlabError(
            f"the adapter in {adapter_dir} was trained on {base_name}, which is not here", "pass --model BASE"
        )
    model_config = ModelConfig(name_or_path=base_name, dtype="float32", allow_pickle=allow_pickle)
    base_model = load_model(model_config)
    if is_quantized(base_model):
        raise SumlabError(
            "merging into a quantized base is refused: the merged weights would be rounded to 4/8 bits",
            "load the base in float32 or bfloat16 (not qlora) and merge into that",
        )
    own_tokenizer = str(adapter_dir) if has_tokenizer(adapter_dir) else None
    tokenizer = load_tokenizer(ModelConfig(name_or_path=base_name, tokenizer=own_tokenizer))
    peft_model = attach_adapter(base_model, adapter_dir, allow_pickle=allow_pickle)
    before = probe_logits(peft_model, tokenizer)
    merged = peft_model.merge_and_unload()
    difference = float((probe_logits(merged, tokenizer) - before).abs().max())
    if difference > MERGE_TOLERANCE:
        raise SumlabError(
            f"merged outputs differ from unmerged ones by {difference:.2e} (tolerance {MERGE_TOLERANCE:.0e})",
            "this method may not support merging; serve the adapter unmerged",
        )
    save_model_dir(merged, tokenizer, Path(out))
    return {"base": base_name, "adapter": str(adapter_dir), "max_abs_logit_difference": difference}


def save_model_dir(model, tokenizer, out: Path) -> None:
    """Save a model with its tokenizer into ``out``, replacing it only once the save is complete."""
    staging = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
