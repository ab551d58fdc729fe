"""Every experiment preset in configs/ (a file with a `models:` list) loads as an ExperimentConfig."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sumlab.config import ExperimentConfig, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(p for p in CONFIGS.glob("*.yaml") if "models" in (yaml.safe_load(p.read_text()) or {}))


def test_there_are_experiment_presets():
    assert {p.name for p in EXPERIMENTS} >= {"lab.yaml", "dialogsum-flan-t5-base.yaml", "demo.yaml"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_preset_loads_and_starts_with_its_command(path):
    config = load_config(ExperimentConfig, path)
    assert config.models[0].kind == "zero_shot"
    assert {entry.method for entry in config.models if entry.kind == "train"} >= {"full", "lora"}
    assert path.read_text().startswith("# sumlab ")
