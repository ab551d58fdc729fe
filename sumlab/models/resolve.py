"""What a local path holds: a model, an adapter, or a run directory holding one of them in ``model/``.

The one rule that loading, adapters, the experiment and the server follow (``sumlab.runtime.paths`` says
whether a name is a local path at all). No heavy imports: the config checks use this module too.
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
