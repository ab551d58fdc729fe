"""``--model`` takes every kind of model the resolver knows: a run directory (full or LoRA), its ``model/``,
a model directory, an adapter directory on its recorded base, or a bundled name; each loads what it should."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from typer.testing import CliRunner

from sumlab.cli.app import app
from sumlab.config import GenerationSettings, ModelConfig
from sumlab.generation.batching import summarize
from sumlab.models.adapters import attach_adapter, probe_logits
from sumlab.models.loading import load_model, load_tokenizer

DIALOGUE = "#Person1#: Could you help me with my homework?\n#Person2#: Sure, what is it about?\n#Person1#: Maths."
TRAIN = {
    "learning_rate": 1e-2,
    "max_steps": 3,
    "per_device_train_batch_size": 4,
    "max_source_length": 64,
    "max_target_length": 16,
    "tensorboard": False,
}


@pytest.fixture(scope="module")
def runs(tiny_train_config, tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """A full fine-tuning run and a LoRA run of three steps on the tiny T5."""
    from sumlab.training.trainer import train

    root = tmp_path_factory.mktemp("runs")
    methods = {"full": {"method": "full"}, "lora": {"method": "lora", "r": 4, "alpha": 8}}
    return {
        name: train(
            tiny_train_config(tiny_model_dir, (8, None), {"peft": peft, "train": TRAIN}), out_dir=root / name
        ).run_dir
        for name, peft in methods.items()
    }


def config_of(name_or_path) -> ModelConfig:
    return ModelConfig(name_or_path=str(name_or_path), dtype="float32")


def cli_summary(model: Path | str, tmp_path: Path) -> str:
    dialogue = tmp_path / "dialogue.txt"
    dialogue.write_text(DIALOGUE, encoding="utf-8")
    args = ["summarize", str(dialogue), "--model", str(model), "--dtype", "float32", "--max-new-tokens", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.exception!r}\n{result.output}"
    return result.stdout.strip()


def summary_of(model, tokenizer) -> str:
    return summarize(model.eval(), tokenizer, [DIALOGUE], GenerationSettings(max_new_tokens=8, batch_size=1))[0]


def test_a_lora_run_and_its_adapter_load_on_the_recorded_base(runs, tiny_model_dir):
    base_model, tokenizer = load_model(config_of(tiny_model_dir)), load_tokenizer(config_of(tiny_model_dir))
    by_hand = attach_adapter(load_model(config_of(tiny_model_dir)), runs["lora"] / "model").eval()
    for path in (runs["lora"], runs["lora"] / "model"):
        loaded = load_model(config_of(path)).eval()
        assert isinstance(loaded, PeftModel)
        assert load_tokenizer(config_of(path)).get_vocab() == tokenizer.get_vocab()
        torch.testing.assert_close(probe_logits(loaded, tokenizer), probe_logits(by_hand, tokenizer))
    # the adapter is really on: it changed the outputs of the base
    assert (probe_logits(by_hand, tokenizer) - probe_logits(base_model.eval(), tokenizer)).abs().max() > 1e-3


def test_a_full_run_loads_its_model(runs, tiny_model_dir):
    tokenizer = load_tokenizer(config_of(tiny_model_dir))
    trained = load_model(config_of(runs["full"] / "model")).eval()
    loaded = load_model(config_of(runs["full"])).eval()
    assert not isinstance(loaded, PeftModel)
    torch.testing.assert_close(probe_logits(loaded, tokenizer), probe_logits(trained, tokenizer))
    base = load_model(config_of(tiny_model_dir)).eval()
    assert (probe_logits(loaded, tokenizer) - probe_logits(base, tokenizer)).abs().max() > 1e-3


@pytest.mark.parametrize(
    "kind", ["full run", "full run's model/", "lora run", "lora run's adapter", "model directory", "bundled name"]
)
def test_summarize_takes_every_kind_of_model(kind, runs, tiny_model_dir, tmp_path):
    path = {
        "full run": runs["full"],
        "full run's model/": runs["full"] / "model",
        "lora run": runs["lora"],
        "lora run's adapter": runs["lora"] / "model",
        "model directory": tiny_model_dir,
        "bundled name": "sumlab-tiny-t5",
    }[kind]
    if kind.startswith("lora"):
        model = attach_adapter(load_model(config_of(tiny_model_dir)), runs["lora"] / "model")
        tokenizer = load_tokenizer(config_of(runs["lora"] / "model"))
    else:
        weights = {"full run": runs["full"] / "model", "full run's model/": runs["full"] / "model"}.get(kind, path)
        model, tokenizer = load_model(config_of(weights)), load_tokenizer(config_of(weights))
    assert cli_summary(path, tmp_path) == summary_of(model, tokenizer)
