"""Where a model comes from: a model bundled with sumlab, a local directory, or a hub id."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from transformers import AutoConfig, PretrainedConfig

from sumlab.errors import SumlabError, first_line
from sumlab.runtime.paths import local_path

BUNDLED_MODELS = {"sumlab-tiny-t5": "demo/sumlab-tiny-t5"}  # shipped inside the package


def resolve_bundled(name_or_path: str) -> str:
    """The package path of a bundled model name (``sumlab-tiny-t5``); any other name unchanged."""
    if name_or_path in BUNDLED_MODELS:
        return str(resources.files("sumlab") / BUNDLED_MODELS[name_or_path])
    return name_or_path


def is_local(name_or_path: str) -> bool:
    """True when ``name_or_path`` names a bundled model or a local path rather than a hub id."""
    return name_or_path in BUNDLED_MODELS or local_path(name_or_path) is not None


def check_local_exists(name_or_path: str, what: str) -> None:
    """Raise when ``name_or_path`` names a local path (not a hub id) that does not exist."""
    if is_local(name_or_path) and not Path(expand_source(name_or_path)).exists():
        raise SumlabError(f"{what} path not found: {name_or_path}", "check the path, or give a hub id")


def expand_source(name_or_path: str) -> str:
    """The path to load from: a bundled model's place in the package, ``~`` expanded; a hub id unchanged."""
    return os.path.expanduser(resolve_bundled(name_or_path))


def hub_hint(name_or_path: str) -> str:
    """What to try when loading ``name_or_path`` failed: check the directory, or work offline."""
    if is_local(name_or_path):
        return "check that the directory holds a saved model (config.json and safetensors weights)"
    return "no hub access? pass a local model directory, or --random-init for a known architecture"


def known_architectures() -> dict[str, Path]:
    """Bundled configs of known architectures, by hub id (``google--flan-t5-base.json`` is ``google/flan-t5-base``)."""
    folder = resources.files("sumlab.models") / "architectures"
    return {
        entry.name.removesuffix(".json").replace("--", "/", 1): Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


def architecture_config(name_or_path: str) -> PretrainedConfig:
    """The transformers config of a model: a bundled architecture, a local directory or a hub id."""
    architectures = known_architectures()
    if name_or_path in architectures:
        return AutoConfig.for_model(**json.loads(architectures[name_or_path].read_text()))
    check_local_exists(name_or_path, "model")
    try:
        return AutoConfig.from_pretrained(expand_source(name_or_path), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise SumlabError(
            f"could not read the config of {name_or_path!r}: {first_line(exc)}", hub_hint(name_or_path)
        ) from None
