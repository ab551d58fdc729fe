"""What a name or path points at: a hub id or a local path; a model, an adapter, or a run directory holding one.

These are the one rule for each question; loaders of models, adapters and datasets all ask them here.
No heavy imports: the config checks and the data loader use this module too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sumlab.errors import SumlabError

RUN_MODEL_DIR = "model"  # where a run directory keeps its final model or adapter
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
PATH_PREFIXES = (".", "/", "~")
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")  # a name ending so is a file, never a hub id


def local_path(name_or_path: str) -> Path | None:
    """The local path ``name_or_path`` names, or None when it is a hub id (``name`` or ``owner/name``).

    A name is a local path when it exists here, or when it can only be one: it starts with ``.``, ``/`` or
    ``~``, has more than one ``/``, or ends in a data file suffix. Such a path need not exist (the caller
    reports it as not found, rather than asking the hub for it).
    """
    path = Path(name_or_path).expanduser()
    written_as_path = (
        name_or_path.startswith(PATH_PREFIXES)
        or name_or_path.count("/") > 1
        or name_or_path.lower().endswith(FILE_SUFFIXES)
    )
    return path if written_as_path or path.exists() else None


def missing_local_path(name_or_path: str) -> Path | None:
    """The local path ``name_or_path`` names when it does not exist; None for a hub id or an existing path."""
    path = local_path(name_or_path)
    return path if path is not None and not path.exists() else None


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
        SumlabError: when the path does not exist, or holds neither a model nor an adapter.
    """
    saved = find_saved_model(path)
    if saved.kind == "missing":
        raise SumlabError(f"model path not found: {saved.directory}", "check the path (models[].path in a config)")
    if saved.kind == "other":
        raise SumlabError(
            f"no model or adapter in {saved.directory}",
            "give a model directory, an adapter directory, or a run directory holding one in model/",
        )
    return saved


def read_adapter_config(adapter_dir: Path) -> dict:
    """The adapter_config.json of an adapter directory, as a dict."""
    return json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
