"""Tests for sumlab.runtime.paths (hub id or local path) and sumlab.models.resolve (what a local path holds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sumlab.errors import SumlabError
from sumlab.models.resolve import SavedModel, find_saved_model, require_saved_model
from sumlab.runtime.paths import local_path, missing_local_path


def saved(directory: Path, config_file: str) -> Path:
    """A directory that looks like a saved model (config.json) or adapter (adapter_config.json)."""
    directory.mkdir(parents=True)
    (directory / config_file).write_text(json.dumps({}), encoding="utf-8")
    return directory


@pytest.mark.parametrize("name", ["google/flan-t5-base", "knkarthick/dialogsum", "gpt2", "sumlab-tiny-t5"])
def test_hub_ids_are_not_local(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_path(name) is None
    assert missing_local_path(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "./model",
        "../data",
        "/no/such/dir",
        "~/runs/x",
        "runs/lora/model",
        "test.jsonl",
        "rows.CSV",
        "split.parquet",
        "x.json",
    ],
)
def test_names_written_as_paths_are_local_even_when_missing(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_path(name) == Path(name).expanduser()
    assert missing_local_path(name) == Path(name).expanduser()


def test_an_existing_path_is_local_even_when_it_reads_like_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert local_path("owner/name") == Path("owner/name")
    assert missing_local_path("owner/name") is None


def test_what_a_path_holds(tmp_path):
    model = saved(tmp_path / "merged", "config.json")
    adapter = saved(tmp_path / "adapter", "adapter_config.json")
    full_run = saved(tmp_path / "full-run" / "model", "config.json").parent
    lora_run = saved(tmp_path / "lora-run" / "model", "adapter_config.json").parent
    (tmp_path / "empty").mkdir()
    assert find_saved_model(str(model)) == SavedModel("model", model)
    assert find_saved_model(adapter) == SavedModel("adapter", adapter)
    assert find_saved_model(full_run) == SavedModel("model", full_run / "model", run_dir=full_run)
    assert find_saved_model(lora_run) == SavedModel("adapter", lora_run / "model", run_dir=lora_run)
    assert find_saved_model(tmp_path / "empty").kind == "other"
    assert find_saved_model(tmp_path / "nowhere").kind == "missing"


def test_an_adapter_wins_over_a_model_config_in_the_same_directory(tmp_path):
    both = saved(tmp_path / "both", "adapter_config.json")
    (both / "config.json").write_text("{}", encoding="utf-8")
    assert find_saved_model(both).kind == "adapter"


def test_every_caller_resolves_the_same_way_and_keeps_its_own_errors(tmp_path):
    from sumlab.models.adapters import resolve_adapter_dir
    from sumlab.serve.registry import resolve_model_dir

    full_run = saved(tmp_path / "full-run" / "model", "config.json").parent
    lora_run = saved(tmp_path / "lora-run" / "model", "adapter_config.json").parent
    (tmp_path / "empty").mkdir()
    assert resolve_adapter_dir(lora_run) == require_saved_model(lora_run).directory == lora_run / "model"
    assert resolve_model_dir(full_run) == require_saved_model(full_run).directory == full_run / "model"
    for call, path, words in [
        (resolve_adapter_dir, tmp_path / "nowhere", "adapter path not found"),
        (resolve_adapter_dir, full_run, "no adapter_config.json"),
        (resolve_model_dir, lora_run, "holds an adapter, not a full model"),
        (resolve_model_dir, tmp_path / "empty", "no config.json"),
        (require_saved_model, tmp_path / "nowhere", "model path not found"),
        (require_saved_model, tmp_path / "empty", "empty: no config.json, adapter_config.json or model/ found"),
    ]:
        with pytest.raises(SumlabError, match=words):
            call(path)
