"""Tests for PEFT methods and sumlab.models.adapters: each method trains and reloads, merging, wrong bases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from sumlab.config import TrainConfig
from sumlab.errors import SumlabError
from sumlab.models import adapters
from sumlab.models.adapters import attach_adapter, merge_adapter, probe_logits
from sumlab.models.tiny import build_tiny_t5
from sumlab.training import trainer as training

METHODS = ["lora", "dora", "ia3", "prefix", "prompt"]


def short_config(tiny_train_config, model_dir: Path, method: str) -> TrainConfig:
    """Three steps of ``method`` on 16 real DialogSum rows, without validation (``tiny_train_config``: conftest's)."""
    sections = {
        "peft": {"method": method, "r": 4, "alpha": 8, "num_virtual_tokens": 4},
        "train": {
            "learning_rate": 1e-2,
            "max_steps": 3,
            "per_device_train_batch_size": 4,
            "logging_steps": 1,
            "max_source_length": 128,
            "max_target_length": 32,
            "tensorboard": False,
        },
    }
    return tiny_train_config(model_dir, (16, None), sections)


class AdapterRuns:
    """Trains each method once per module, on first use, keeping the in-memory model and its initial weights."""

    def __init__(self, tiny_train_config, model_dir: Path, root: Path):
        self.tiny_train_config, self.model_dir, self.root = tiny_train_config, model_dir, root
        self.runs: dict[str, dict] = {}

    def __getitem__(self, method: str) -> dict:
        if method not in self.runs:
            self.runs[method] = self._train(method)
        return self.runs[method]

    def _train(self, method: str) -> dict:
        captured = {}
        build = training.build_trainable_model

        def build_and_keep(config):
            model = build(config)
            captured["model"] = model
            captured["initial"] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            return model

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(training, "build_trainable_model", build_and_keep)
            config = short_config(self.tiny_train_config, self.model_dir, method)
            result = training.train(config, out_dir=self.root / method)
        return {"result": result, **captured}


@pytest.fixture(scope="module")
def runs(tiny_train_config, tiny_model_dir, tmp_path_factory) -> AdapterRuns:
    return AdapterRuns(tiny_train_config, tiny_model_dir, tmp_path_factory.mktemp("adapters"))


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def fresh_base(model_dir: Path):
    return AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()


def saved_keys(path: Path) -> set[str]:
    with safe_open(str(path), framework="pt") as handle:
        return set(handle.keys())


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_saves_and_loads_back(method, runs, tiny_model_dir, tokenizer):
    run = runs[method]
    model, adapter_dir = run["model"].eval(), run["result"].model_dir
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {path.name for path in adapter_dir.iterdir()}
    assert not (adapter_dir / "model.safetensors").exists()

    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and trainable.keys() == run["initial"].keys()
    unchanged = [name for name, p in trainable.items() if torch.equal(p, run["initial"][name])]
    assert not unchanged, f"never updated: {unchanged}"
    counts = run["result"].summary["parameters"]
    assert counts["trainable"] == sum(p.numel() for p in trainable.values()) < counts["total"] / 4

    base_logits = probe_logits(fresh_base(tiny_model_dir), tokenizer)
    loaded = attach_adapter(fresh_base(tiny_model_dir), run["result"].run_dir)  # a run directory resolves to model/
    loaded_logits = probe_logits(loaded.eval(), tokenizer)
    torch.testing.assert_close(loaded_logits, probe_logits(model, tokenizer), atol=1e-5, rtol=0)
    assert (loaded_logits - base_logits).abs().max() > 1e-3  # the adapter does change the outputs
    assert not any(p.requires_grad for p in loaded.get_base_model().parameters())  # loaded for inference


def test_merged_lora_equals_unmerged_and_has_no_adapter_layers(runs, tiny_model_dir, tokenizer, tmp_path):
    run = runs["lora"]
    report = merge_adapter(run["result"].run_dir, tmp_path / "merged")
    assert report["max_abs_logit_difference"] <= 1e-4
    assert report["base"] == str(tiny_model_dir)  # read from adapter_config.json

    merged = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged").eval()
    unmerged = attach_adapter(fresh_base(tiny_model_dir), run["result"].model_dir).eval()
    merged_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert merged_tokenizer.get_vocab() == tokenizer.get_vocab()
    torch.testing.assert_close(
        probe_logits(merged, merged_tokenizer), probe_logits(unmerged, tokenizer), atol=1e-4, rtol=0
    )

    keys = saved_keys(tmp_path / "merged" / "model.safetensors")
    assert not any("lora_" in key or "base_layer" in key for key in keys)
    assert keys == saved_keys(tiny_model_dir / "model.safetensors")
    base = fresh_base(tiny_model_dir).state_dict()
    q_name = "encoder.block.0.layer.0.SelfAttention.q.weight"
    assert not torch.equal(merged.state_dict()[q_name], base[q_name])  # the update went into the weights
    k_name = "encoder.block.0.layer.0.SelfAttention.k.weight"
    assert torch.equal(merged.state_dict()[k_name], base[k_name])  # untargeted layers are untouched


def test_merge_with_an_explicit_base(runs, tiny_model_dir, tmp_path):
    report = merge_adapter(runs["lora"]["result"].model_dir, tmp_path / "merged", base=str(tiny_model_dir))
    assert report["max_abs_logit_difference"] <= 1e-4 and (tmp_path / "merged" / "model.safetensors").is_file()


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_merging_prompt_learning_is_refused(method, runs, tmp_path):
    with pytest.raises(SumlabError, match="unmerged"):
        merge_adapter(runs[method]["result"].run_dir, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merging_into_a_quantized_base_is_refused(runs, tiny_model_dir, tmp_path, monkeypatch):
    def load_as_if_4bit(config, device=None):
        model = AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir)
        model.is_loaded_in_4bit = True
        return model

    monkeypatch.setattr(adapters, "load_model", load_as_if_4bit)
    with pytest.raises(SumlabError, match="quantized"):
        merge_adapter(runs["lora"]["result"].run_dir, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


@pytest.fixture(scope="module")
def wrong_bases(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """Tiny T5s that differ from the conftest one: wider (d_model 64), and shallower (one layer)."""
    vocab_size = AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir).config.vocab_size
    shapes = {"wider": {"d_model": 64, "d_ff": 128}, "shallower": {"d_model": 32, "d_ff": 64, "num_layers": 1}}
    directories = {}
    for name, shape in shapes.items():
        directory = tmp_path_factory.mktemp(name)
        build_tiny_t5(vocab_size, **shape).save_pretrained(directory)
        directories[name] = directory
    return directories


# prompt tuning only prepends embeddings, so a shallower base of the same width fits it
@pytest.mark.parametrize("method, base", [(m, "wider") for m in METHODS] + [(m, "shallower") for m in METHODS[:4]])
def test_an_adapter_on_the_wrong_base_is_refused(method, base, runs, wrong_bases, tiny_model_dir, tmp_path):
    adapter_dir = runs[method]["result"].model_dir
    with pytest.raises(SumlabError, match="does not fit this base model") as info:
        attach_adapter(fresh_base(wrong_bases[base]), adapter_dir)
    assert str(tiny_model_dir) in info.value.hint  # it says which base the adapter belongs to
    if method in ("lora", "dora", "ia3"):
        with pytest.raises(SumlabError, match="does not fit this base model"):
            merge_adapter(adapter_dir, tmp_path / "merged", base=str(wrong_bases[base]))
        assert not (tmp_path / "merged").exists()


def test_a_missing_adapter_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(SumlabError, match="adapter path not found"):
        attach_adapter(fresh_base(tiny_model_dir), tmp_path / "nowhere")
    with pytest.raises(SumlabError, match="adapter path not found"):
        merge_adapter(tmp_path / "nowhere", tmp_path / "merged")
    with pytest.raises(SumlabError, match="no adapter_config.json"):
        attach_adapter(fresh_base(tiny_model_dir), tiny_model_dir)  # a full model, not an adapter


# ---------------------------------------------------------------- the base an adapter records


def recorded_base(adapter_dir: Path) -> str:
    return json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]


def test_an_adapter_on_the_bundled_base_records_its_name_and_a_moved_run_still_merges_and_loads(
    tiny_train_config, tmp_path
):
    from sumlab.config import ModelConfig
    from sumlab.models.loading import load_model, load_tokenizer

    trained = training.train(short_config(tiny_train_config, "sumlab-tiny-t5", "lora"), out_dir=tmp_path / "a" / "lora")
    assert recorded_base(trained.model_dir) == "sumlab-tiny-t5"  # not a path into this installation
    moved = tmp_path / "b" / "lora"  # another machine, as far as the run can tell
    shutil.copytree(trained.run_dir, moved)
    shutil.rmtree(tmp_path / "a")

    report = merge_adapter(moved, tmp_path / "merged")
    assert report["base"] == "sumlab-tiny-t5" and report["max_abs_logit_difference"] <= 1e-4
    config = ModelConfig(name_or_path=str(moved), dtype="float32")
    loaded, tokenizer = load_model(config).eval(), load_tokenizer(config)
    merged = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(probe_logits(loaded, tokenizer), probe_logits(merged, tokenizer), atol=1e-4, rtol=0)


def test_the_recorded_base_is_a_hub_id_as_given_and_a_local_directory_in_full(tiny_model_dir, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from sumlab.models.loading import portable_model_name, set_portable_name

    assert portable_model_name("google/flan-t5-small") == "google/flan-t5-small"
    assert portable_model_name("sumlab-tiny-t5") == "sumlab-tiny-t5"
    monkeypatch.chdir(tiny_model_dir.parent)
    assert portable_model_name(f"./{tiny_model_dir.name}") == str(tiny_model_dir.resolve())

    model = fresh_base(tiny_model_dir)
    set_portable_name(model, "google/flan-t5-small")  # as if loaded from the hub cache
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q"]))
    peft_model.save_pretrained(tmp_path / "adapter")
    assert recorded_base(tmp_path / "adapter") == "google/flan-t5-small"
