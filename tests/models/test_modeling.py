"""Tests for sumlab.models: FLAN-T5 layout at random init, dtypes, safe loading, PEFT, parameter counts."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn
from transformers import ByT5Tokenizer

from sumlab.config import ModelConfig, PeftSettings
from sumlab.errors import SumlabError
from sumlab.models.loading import (
    load_model,
    load_pretrained,
    load_tokenizer,
    resolve_dtype,
)
from sumlab.models.parameters import count_parameters
from sumlab.models.peft_methods import add_peft
from sumlab.models.random_init import build_random_model

# Parameter counts of the real hub checkpoints (transformers' num_parameters() on google/flan-t5-*).
FLAN_T5_SMALL_PARAMETERS = 76_961_152
FLAN_T5_BASE_PARAMETERS = 247_577_856
# The lab's printout for flan-t5-base with LoRA r=32, alpha=32 on q and v.
LAB_LORA_TRAINABLE = 3_538_944
LAB_LORA_TOTAL = 251_116_800

PEFT_METHODS = ["lora", "dora", "ia3", "prefix", "prompt"]


def tiny_config(directory, **fields) -> ModelConfig:
    return ModelConfig(name_or_path=str(directory), dtype="float32", **fields)


def example_batch(tokenizer) -> dict[str, torch.Tensor]:
    encoded = tokenizer(
        ["#Person1#: Hello, how are you?\n#Person2#: Fine.", "#Person1#: Bye."], return_tensors="pt", padding=True
    )
    labels = tokenizer(["They greet.", "One leaves."], return_tensors="pt", padding=True).input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    return {"input_ids": encoded.input_ids, "attention_mask": encoded.attention_mask, "labels": labels}


def on_device_of(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {key: value.to(device) for key, value in batch.items()}


@torch.no_grad()
def logits_of(model, batch) -> torch.Tensor:
    return model.eval()(**on_device_of(model, batch)).logits.cpu()


def assert_untied(model) -> None:
    head, embedding = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    assert head is not embedding
    assert head.data_ptr() != embedding.data_ptr()
    assert not torch.equal(head, embedding)


# ---------------------------------------------------------------- FLAN-T5 layout at random init


def test_random_init_flan_t5_small_has_the_checkpoints_layout():
    model = build_random_model("google/flan-t5-small")
    assert_untied(model)
    assert model.config.tie_word_embeddings is False
    # T5 v1.1 does not rescale decoder outputs before lm_head (only tied, original T5 does)
    assert getattr(model.config, "scale_decoder_outputs", False) is False
    counts = count_parameters(model)
    assert counts.total == FLAN_T5_SMALL_PARAMETERS  # a tied lm_head would give 60,511,616
    assert counts.trainable == counts.total


def test_random_init_flan_t5_base_and_the_labs_lora_printout():
    """The one test that builds flan-t5-base (about 10 s on a CPU)."""
    model = build_random_model("google/flan-t5-base")
    assert_untied(model)
    assert count_parameters(model).total == FLAN_T5_BASE_PARAMETERS
    lora = add_peft(model, PeftSettings(method="lora", r=32, alpha=32, targets=["q", "v"]))
    counts = count_parameters(lora)
    assert (counts.trainable, counts.total) == (LAB_LORA_TRAINABLE, LAB_LORA_TOTAL)
    assert str(counts) == (
        "trainable model parameters: 3538944\n"
        "all model parameters: 251116800\n"
        "percentage of trainable model parameters: 1.41%"
    )


def test_random_init_is_seeded_and_untied(tiny_model_dir):
    first = build_random_model(str(tiny_model_dir), seed=0)
    again = build_random_model(str(tiny_model_dir), seed=0)
    other = build_random_model(str(tiny_model_dir), seed=1)
    assert_untied(first)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not torch.equal(first.lm_head.weight, other.lm_head.weight)


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(SumlabError) as info:
        build_random_model("google/not-a-model")
    assert "google/flan-t5-base" in str(info.value)
    assert "google/flan-t5-small" in str(info.value)


def test_random_init_of_a_hub_id_gets_the_byte_tokenizer():
    tokenizer = load_tokenizer(ModelConfig(name_or_path="google/flan-t5-small", random_init=True))
    assert isinstance(tokenizer, ByT5Tokenizer)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1)  # T5's ids


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize("model_type", ["t5", "mt5", "umt5"])
def test_float16_is_refused_for_t5(model_type):
    with pytest.raises(SumlabError, match="overflow") as info:
        resolve_dtype("float16", model_type)
    assert "bfloat16" in str(info.value)  # the hint offers a way out


def test_float16_is_allowed_for_other_models():
    assert resolve_dtype("float16", "bart") is torch.float16


@pytest.mark.parametrize(("precision", "dtype"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_explicit_dtypes(precision, dtype):
    assert resolve_dtype(precision, "t5") is dtype


@pytest.mark.parametrize(
    ("cuda", "bf16", "dtype"),
    [(False, False, torch.float32), (True, False, torch.float32), (True, True, torch.bfloat16)],
)
def test_auto_dtype(monkeypatch, cuda, bf16, dtype):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert resolve_dtype("auto", "t5") is dtype


def test_random_init_refuses_float16_for_t5(tiny_model_dir):
    with pytest.raises(SumlabError, match="overflow"):
        load_model(ModelConfig(name_or_path=str(tiny_model_dir), random_init=True, dtype="float16"))


def test_loaded_model_has_the_requested_dtype(tiny_model_dir):
    model = load_model(ModelConfig(name_or_path=str(tiny_model_dir), dtype="bfloat16"), device=torch.device("cpu"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


# ---------------------------------------------------------------- loading from disk


@pytest.fixture
def pickle_only_dir(tmp_path, tiny_model_dir):
    """The tiny model as config.json + pytorch_model.bin (+ tokenizer), without safetensors.

    transformers 5's save_pretrained always writes safetensors (safe_serialization is gone), so the
    pickle file is written with torch.save, as older checkpoints on the hub have it.
    """
    directory = tmp_path / "pickled"
    directory.mkdir()
    model = load_model(tiny_config(tiny_model_dir))
    model.config.save_pretrained(directory)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, directory / name)
    return directory


def test_pickle_only_directory_is_refused_without_allow_pickle(pickle_only_dir):
    with pytest.raises(SumlabError) as info:
        load_model(tiny_config(pickle_only_dir))
    assert "pickle" in str(info.value)
    assert "--allow-pickle" in str(info.value)


def test_pickle_only_directory_loads_with_allow_pickle(pickle_only_dir, tiny_model):
    original, tokenizer = tiny_model
    loaded = load_model(tiny_config(pickle_only_dir, allow_pickle=True))
    assert_untied(loaded)
    batch = example_batch(tokenizer)
    assert torch.equal(logits_of(loaded, batch), logits_of(original, batch))


def test_missing_model_path(tmp_path):
    with pytest.raises(SumlabError, match="model path not found"):
        load_model(tiny_config(tmp_path / "nope"))
    with pytest.raises(SumlabError, match="model path not found"):
        load_pretrained(str(tmp_path / "nope"), "float32")


def test_missing_tokenizer_path(tmp_path):
    with pytest.raises(SumlabError, match="tokenizer path not found"):
        load_tokenizer(tiny_config(tmp_path / "nope"))


def test_directory_without_weights_is_refused(tmp_path, tiny_model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SumlabError, match="empty: no config.json, adapter_config.json or model/ found"):
        load_model(tiny_config(empty))  # not a model at all: the resolver says what it expected
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(tiny_model_dir / "config.json", config_only / "config.json")
    with pytest.raises(SumlabError, match="no model weights"):
        load_model(tiny_config(config_only, allow_pickle=True))


def test_save_and_reload_keeps_lm_head_untied_and_logits(tmp_path, tiny_model):
    model, tokenizer = tiny_model
    assert_untied(model)
    assert model.config.tie_word_embeddings is False  # transformers 5's T5Config would say True
    with torch.no_grad():  # make the head clearly its own: a reload that re-tied it would change logits
        model.lm_head.weight.mul_(-2.0)
    model.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["tie_word_embeddings"] is False
    reloaded = load_model(tiny_config(tmp_path / "saved"))
    assert_untied(reloaded)
    assert torch.equal(reloaded.lm_head.weight, model.lm_head.weight)
    batch = example_batch(tokenizer)
    assert torch.equal(logits_of(reloaded, batch), logits_of(model, batch))
    # transformers ties whenever the config says so (tie_weights, resize_token_embeddings, merges)
    reloaded.tie_weights()
    assert_untied(reloaded)


# ---------------------------------------------------------------- parameters and PEFT


def test_count_parameters_counts_shared_tensors_once():
    first, second = nn.Linear(4, 3), nn.Linear(4, 3)
    second.weight = first.weight  # tied
    second.bias.requires_grad_(False)
    counts = count_parameters(nn.ModuleList([first, second]))
    assert counts.total == 12 + 3 + 3
    assert counts.trainable == 12 + 3
    assert counts.percent == pytest.approx(100 * 15 / 18)
    assert counts.to_json() == {"trainable": 15, "total": 18, "percent": round(100 * 15 / 18, 4)}


def test_full_fine_tuning_trains_everything(tiny_model):
    model, _ = tiny_model
    model.requires_grad_(False)
    full = add_peft(model, PeftSettings(method="full"))
    assert full is model
    counts = count_parameters(full)
    assert counts.trainable == counts.total == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def test_lora_counts_are_the_adapter_matrices(tiny_model):
    model, _ = tiny_model
    base_total = count_parameters(model).total
    d_model, inner = model.config.d_model, model.config.num_heads * model.config.d_kv
    lora = add_peft(model, PeftSettings(method="lora", r=4, targets=["q", "v"]))
    # q and v in every attention: encoder self, decoder self and cross
    attentions = model.config.num_layers + 2 * model.config.num_decoder_layers
    expected = attentions * 2 * 4 * (d_model + inner)
    counts = count_parameters(lora)
    assert counts.trainable == expected
    assert counts.total == base_total + expected
    trainable_names = [name for name, p in lora.named_parameters() if p.requires_grad]
    assert trainable_names and all("lora_" in name for name in trainable_names)


def test_bad_targets_list_the_available_modules(tiny_model):
    model, _ = tiny_model
    with pytest.raises(SumlabError) as info:
        add_peft(model, PeftSettings(method="lora", targets=["q", "query_proj"]))
    message = str(info.value)
    assert "query_proj" in message
    listed = message.split("choose from its linear layers:")[1].rstrip(")").replace(",", " ").split()
    assert set(listed) >= {"k", "o", "q", "v", "wi_0", "wi_1", "wo"}


@pytest.mark.parametrize("method", PEFT_METHODS)
def test_each_peft_method_trains_some_but_not_all(tiny_model, method):
    model, tokenizer = tiny_model
    batch = example_batch(tokenizer)
    before = logits_of(model, batch)
    wrapped = add_peft(model, PeftSettings(method=method, r=4, num_virtual_tokens=4))
    counts = count_parameters(wrapped)
    assert 0 < counts.trainable < counts.total
    assert not wrapped.get_base_model().shared.weight.requires_grad  # the base is frozen
    wrapped.train()
    loss = wrapped(**on_device_of(wrapped, batch)).loss
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in wrapped.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in wrapped.parameters() if not p.requires_grad)
    if method in {"lora", "dora", "ia3"}:  # these start as the identity
        torch.testing.assert_close(logits_of(wrapped, batch), before, rtol=1e-5, atol=1e-5)
