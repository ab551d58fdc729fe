"""Tests for sumlab.runtime.paths (hub id or local path) and sumlab.models.resolve (what a local path holds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sumlab.errors import SumlabError
from sumlab.models.resolve import (
    ModelSource,
    SavedModel,
    adapter_base_name,
    find_saved_model,
    require_saved_model,
    resolve_model_source,
)
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


# ---------------------------------------------------------------- what --model resolves to


def with_tokenizer(directory: Path) -> Path:
    (directory / "tokenizer.json").write_text("{}", encoding="utf-8")
    return directory


def adapter_on(directory: Path, base: str | None) -> Path:
    directory.mkdir(parents=True)
    config = {"peft_type": "LORA", "base_model_name_or_path": base}
    (directory / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def test_a_hub_id_or_bundled_name_is_its_own_weights_and_tokenizer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("google/flan-t5-base", "sumlab-tiny-t5"):
        assert resolve_model_source(name) == ModelSource(name, tokenizer=name)


def test_a_model_directory_and_a_full_run_resolve_to_the_model(tmp_path):
    model = with_tokenizer(saved(tmp_path / "merged", "config.json"))
    run = tmp_path / "full-run"
    with_tokenizer(saved(run / "model", "config.json"))
    assert resolve_model_source(str(model)) == ModelSource(str(model), tokenizer=str(model))
    assert resolve_model_source(str(run)) == ModelSource(str(run / "model"), tokenizer=str(run / "model"))
    assert resolve_model_source(str(run / "model")) == resolve_model_source(str(run))
    bare = saved(tmp_path / "bare", "config.json")
    assert resolve_model_source(str(bare)) == ModelSource(str(bare), tokenizer=None)  # loading says so


def test_an_adapter_resolves_to_its_recorded_base_and_its_own_tokenizer(tmp_path):
    base = saved(tmp_path / "base", "config.json")
    run = tmp_path / "lora-run"
    adapter = with_tokenizer(adapter_on(run / "model", str(base)))
    expected = ModelSource(str(base), adapter=adapter, tokenizer=str(adapter))
    assert resolve_model_source(str(run)) == resolve_model_source(str(adapter)) == expected
    no_tokenizer = adapter_on(tmp_path / "hub-adapter", "google/flan-t5-small")
    assert resolve_model_source(str(no_tokenizer)) == ModelSource(
        "google/flan-t5-small", adapter=no_tokenizer, tokenizer="google/flan-t5-small"
    )


def test_an_adapter_trained_on_the_bundled_base_of_another_installation_finds_it_here(tmp_path):
    from sumlab.models.adapters import adapter_base_model

    old_path = "/home/someone/.venv/lib/python3.11/site-packages/sumlab/demo/sumlab-tiny-t5"
    adapter = adapter_on(tmp_path / "adapter", old_path)
    assert adapter_base_name(adapter) == adapter_base_model(adapter) == "sumlab-tiny-t5"
    assert resolve_model_source(str(adapter)).weights == "sumlab-tiny-t5"
    other = adapter_on(tmp_path / "other", "/models/my-t5")  # any other path is kept as recorded
    assert adapter_base_name(other) == "/models/my-t5"


@pytest.mark.parametrize(
    ("layout", "says"),
    [
        ("empty", "{root}: no config.json, adapter_config.json or model/ found"),
        ("empty model/", "{root}/model: no config.json or adapter_config.json found"),
        ("unfinished run", "{root}: a run directory without model/: its training did not finish"),
        ("a file", "{root} is a file, not a directory"),
        ("adapter without a base", "{root}: an adapter that records no base model"),
        ("adapter on a missing base", "{root}: an adapter trained on {root}/gone, which is not here"),
    ],
)
def test_a_path_that_holds_no_usable_model_says_what_it_found(tmp_path, layout, says):
    root = tmp_path / "x"
    if layout == "a file":
        root.write_text("hello", encoding="utf-8")
    elif layout == "adapter without a base":
        adapter_on(root, None)
    elif layout == "adapter on a missing base":
        adapter_on(root, str(root / "gone"))
    else:
        root.mkdir()
        (root / {"empty": ".", "empty model/": "model", "unfinished run": "checkpoints"}[layout]).mkdir(exist_ok=True)
    with pytest.raises(SumlabError) as info:
        resolve_model_source(str(root))
    assert str(info.value).startswith(says.format(root=root))
    assert info.value.hint  # every one of them says what to do


def test_a_missing_local_path_is_not_asked_of_the_hub(tmp_path):
    with pytest.raises(SumlabError, match="model path not found"):
        resolve_model_source(str(tmp_path / "nowhere"))
