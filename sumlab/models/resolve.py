"""What a model name or path holds: a model, an adapter, or a run directory holding one of them in ``model/``.

The one rule that loading, adapters, the experiment and the server follow (``sumlab.runtime.paths`` says
whether a name is a local path at all). ``resolve_model_source`` turns whatever ``--model`` names into what
to load: a full model's weights, the adapter to attach on them, and where the tokenizer is. No heavy
imports: the config checks use this module too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sumlab.errors import SumlabError
from sumlab.runtime.paths import local_path

RUN_MODEL_DIR = "model"  # where a run directory keeps its final model or adapter
RUN_CHECKPOINTS_DIR = "checkpoints"
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "spiece.model", "vocab.json")
EXPECTED_KINDS = "expected a model directory, an adapter directory or a sumlab run directory"


SavedKind = Literal["model", "adapter", "missing", "other"]


@dataclass(frozen=True)
class SavedModel:
    """What a local path holds.

    Attributes:
        kind: ``model`` (a full model: config.json), ``adapter`` (a PEFT adapter: adapter_config.json),
            ``missing`` (the path does not exist) or ``other`` (it holds neither).
        directory: where the weights are: the path itself, or the ``model/`` of a run directory
            (the path itself for ``missing`` and ``other``).
        run_dir: the run directory when the weights are in its ``model/``, else None.
    """

    kind: SavedKind
    directory: Path
    run_dir: Path | None = None


def find_saved_model(path: str | Path) -> SavedModel:
    """Say what ``path`` is: a model or adapter directory, or a run directory holding one of them in ``model/``.

    The path itself is looked at before its ``model/``, and an adapter before a full model.
    """
    root = Path(path).expanduser()
    if not root.exists():
        return SavedModel("missing", root)
    for candidate in (root, root / RUN_MODEL_DIR):
        run_dir = root if candidate != root else None
        if (candidate / ADAPTER_CONFIG).is_file():
            return SavedModel("adapter", candidate, run_dir)
        if (candidate / MODEL_CONFIG).is_file():
            return SavedModel("model", candidate, run_dir)
    return SavedModel("other", root)


def require_saved_model(path: str | Path) -> SavedModel:
    """``find_saved_model`` for a path that must hold a model or an adapter.

    Raises:
        SumlabError: when the path does not exist, or holds neither a model nor an adapter (saying what it found).
    """
    saved = find_saved_model(path)
    if saved.kind == "missing":
        raise SumlabError(f"model path not found: {saved.directory}", "check the path")
    if saved.kind == "other":
        raise SumlabError(*describe_unusable(saved.directory))
    return saved


def describe_unusable(root: Path) -> tuple[str, str]:
    """What ``root`` holds, and what to do, when it is neither a model, an adapter nor a run directory with one."""
    if root.is_file():
        return f"{root} is a file, not a directory", EXPECTED_KINDS
    if (root / RUN_MODEL_DIR).is_dir():
        return f"{root / RUN_MODEL_DIR}: no {MODEL_CONFIG} or {ADAPTER_CONFIG} found", EXPECTED_KINDS
    if (root / RUN_CHECKPOINTS_DIR).is_dir():
        return (
            f"{root}: a run directory without {RUN_MODEL_DIR}/: its training did not finish",
            "finish it with `sumlab train --resume`, or give a model, adapter or finished run directory",
        )
    return f"{root}: no {MODEL_CONFIG}, {ADAPTER_CONFIG} or {RUN_MODEL_DIR}/ found", EXPECTED_KINDS


def has_tokenizer(directory: Path) -> bool:
    """True when ``directory`` holds a saved tokenizer."""
    return any((directory / name).is_file() for name in TOKENIZER_FILES)


@dataclass(frozen=True)
class ModelSource:
    """What a model name or path (``--model``, ``model.name_or_path``) resolves to.

    Attributes:
        weights: the full model to load: a hub id, a bundled model's name, a model directory, or, for an
            adapter, the base model its adapter_config.json records (as ``adapter_base_name`` reads it).
        adapter: the adapter directory to attach on ``weights``, or None.
        tokenizer: where the tokenizer is (a hub id, a bundled name or a directory), or None when the local
            model directory saved none.
    """

    weights: str
    adapter: Path | None = None
    tokenizer: str | None = None


def resolve_model_source(name_or_path: str) -> ModelSource:
    """Resolve a hub id, bundled name, model directory, adapter directory or run directory into what to load.

    A run directory stands for its ``model/``: a full model, or an adapter loaded on the base it records.

    Raises:
        SumlabError: for a local path that is missing or holds none of these, or an adapter whose recorded
            base is missing.
    """
    if local_path(name_or_path) is None:  # a hub id or a bundled model's name
        return ModelSource(name_or_path, tokenizer=name_or_path)
    saved = require_saved_model(name_or_path)
    directory = saved.directory
    if saved.kind == "model":
        return ModelSource(str(directory), tokenizer=str(directory) if has_tokenizer(directory) else None)
    base = adapter_base_name(directory)
    if not base:
        raise SumlabError(
            f"{directory}: an adapter that records no base model",
            "merge it onto its base with `sumlab merge --adapter PATH --model BASE --out DIR`, then use that",
        )
    missing_base = local_path(base)
    if missing_base is not None and not missing_base.exists():
        raise SumlabError(
            f"{directory}: an adapter trained on {base}, which is not here",
            "put its base model at that path, or merge it with `sumlab merge --adapter PATH --model BASE --out DIR`",
        )
    return ModelSource(base, adapter=directory, tokenizer=str(directory) if has_tokenizer(directory) else base)


def refuse_adapter_as_base(name_or_path: str, use: str, hint: str) -> None:
    """Raise when ``name_or_path`` resolves to an adapter where ``use`` needs a full model to start from."""
    adapter = resolve_model_source(name_or_path).adapter
    if adapter is not None:
        raise SumlabError(f"{adapter} is an adapter, and {use} starts from a full model", hint)


def adapter_base_name(adapter_dir: Path) -> str:
    """The base model an adapter records (``""`` when none), as a name that loads on this machine.

    Adapters that older versions trained on the bundled demo base record its path inside that installation
    (``.../site-packages/sumlab/demo/sumlab-tiny-t5``); those get the bundled name back.
    """
    from sumlab.models.sources import BUNDLED_MODELS  # imported here: it imports transformers

    recorded = read_adapter_config(adapter_dir).get("base_model_name_or_path") or ""
    posix = recorded.replace("\\", "/")
    for name, package_path in BUNDLED_MODELS.items():
        if posix.endswith(f"/sumlab/{package_path}"):
            return name
    return recorded


def read_adapter_config(adapter_dir: Path) -> dict:
    """The adapter_config.json of an adapter directory, as a dict."""
    file = adapter_dir / ADAPTER_CONFIG
    try:
        config = json.loads(file.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SumlabError(f"{file}: not valid JSON: {exc}", "save the adapter again, or fix that file") from None
    if not isinstance(config, dict):
        raise SumlabError(f"{file}: not a JSON object", "save the adapter again, or fix that file")
    return config
