"""Shared fixtures: real DialogSum rows from ../shared/data and a tiny T5 built once per session."""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from sumlab.config import ExperimentConfig, ModelEntry, TrainConfig

# Tiny models gain nothing from a second thread, and on a busy 2-core machine the threads of
# several torch processes fight (10x slower); subprocesses the tests start inherit this too.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# precision "auto" is bf16 on a CPU with bf16 instructions; the suite runs it as float32 on every machine, so that a
# result does not depend on the CPU (tests/runtime/test_precision.py covers the bf16 paths on their own)
os.environ.setdefault("SUMLAB_CPU_BF16", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DIALOGSUM = SHARED_DATA / "dialogsum"
LAB_CSV = SHARED_DATA / "seed" / "dialogue-summary-training-results.csv"


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session")
def dialogsum_dir() -> Path:
    if not DIALOGSUM.is_dir():
        pytest.skip("../shared/data/dialogsum is not present")
    return DIALOGSUM


@pytest.fixture(scope="session")
def lab_csv() -> Path:
    """The lab's own results file: 1500 rows of references and the summaries of its three models."""
    if not LAB_CSV.is_file():
        pytest.skip(f"no shared data at {LAB_CSV}")
    return LAB_CSV


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, dialogsum_dir) -> Path:
    """A tiny T5 (random init) with a BPE tokenizer trained on DialogSum validation text, saved to disk."""
    from sumlab.models.tiny import build_tiny_t5, train_tokenizer

    rows = read_jsonl(dialogsum_dir / "validation.jsonl")
    texts = [row["dialogue"] for row in rows] + [row["summary"] for row in rows]
    tokenizer = train_tokenizer(texts, vocab_size=800)
    model = build_tiny_t5(len(tokenizer), d_model=32, d_ff=64, num_layers=2, num_heads=4, seed=0)
    directory = tmp_path_factory.mktemp("tiny-t5")
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory


@pytest.fixture()
def tiny_model(tiny_model_dir):
    """A fresh copy of the tiny model and its tokenizer, loaded from disk (safe to train or modify)."""
    from sumlab.config import ModelConfig
    from sumlab.models.loading import load_model, load_tokenizer

    config = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32")
    return load_model(config), load_tokenizer(config)


@pytest.fixture(scope="session")
def causal_tokenizer(dialogsum_dir):
    """A byte-level BPE tokenizer for the tiny causal models: <s> first, </s> the EOS, no chat template."""
    from sumlab.models.tiny import train_tokenizer

    rows = read_jsonl(dialogsum_dir / "validation.jsonl")
    return train_tokenizer([row["dialogue"] for row in rows] + [row["summary"] for row in rows], 800, causal=True)


def _save_causal(directory: Path, model, tokenizer) -> Path:
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, causal_tokenizer) -> Path:
    """A tiny Llama (random init) and its tokenizer, saved to disk."""
    from sumlab.models.tiny import build_tiny_llama

    return _save_causal(
        tmp_path_factory.mktemp("tiny-llama"), build_tiny_llama(len(causal_tokenizer)), causal_tokenizer
    )


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, causal_tokenizer) -> Path:
    """A tiny GPT-2 (random init) and its tokenizer, saved to disk."""
    from sumlab.models.tiny import build_tiny_gpt2

    return _save_causal(tmp_path_factory.mktemp("tiny-gpt2"), build_tiny_gpt2(len(causal_tokenizer)), causal_tokenizer)


def build_train_config(data_dir: Path, model_dir: Path, rows: tuple[int, int | None], *sections: dict) -> TrainConfig:
    """A float32 TrainConfig for a tiny model on ``rows`` (train, validation or None) real DialogSum rows.

    Each of ``sections`` ({section: value}) updates the config in turn: a dict merges into a section that is one,
    anything else replaces it (``{"data": {"validation": None}}`` drops the validation rows).
    """
    from sumlab.config import TrainConfig, build_config

    train_rows, validation_rows = rows
    data = {
        "model": {"name_or_path": str(model_dir), "dtype": "float32"},
        "data": {
            "source": str(data_dir),
            "train": {"split": "train", "limit": train_rows},
            "validation": {"split": "validation", "limit": validation_rows} if validation_rows else None,
        },
        "train": {"precision": "float32"},
    }
    for update in sections:
        for section, value in update.items():
            current = data.get(section)
            data[section] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    return build_config(TrainConfig, data)


@pytest.fixture(scope="session")
def tiny_train_config(dialogsum_dir):
    """``build_train_config`` on ../shared/data/dialogsum: ``tiny_train_config(model_dir, rows, *sections)``."""
    return functools.partial(build_train_config, dialogsum_dir)


def build_experiment_config(
    data_dir: Path,
    model_dir: Path,
    name: str,
    models: list[ModelEntry],
    rows: tuple[int, int | None, int],
    *,
    train: dict | None = None,
    max_new_tokens: int = 8,
    **fields,
) -> ExperimentConfig:
    """A small experiment on a tiny base model and ``rows`` (train, validation or None, test) real DialogSum rows.

    Training takes batches of 4, 128 source and 32 target tokens, without TensorBoard; ``train`` updates these
    settings. Generation makes ``max_new_tokens`` tokens from 128 source tokens. ``fields`` are other fields of
    the ExperimentConfig (eval, for one).
    """
    from sumlab.config import (
        DataConfig,
        ExperimentConfig,
        GenerationSettings,
        ModelConfig,
        SplitSelection,
        TrainSettings,
    )

    train_rows, validation_rows, test_rows = rows
    settings = dict(per_device_train_batch_size=4, max_source_length=128, max_target_length=32, tensorboard=False)
    return ExperimentConfig(
        name=name,
        model=ModelConfig(name_or_path=str(model_dir)),
        data=DataConfig(
            source=str(data_dir),
            train=SplitSelection(split="train", limit=train_rows),
            validation=SplitSelection(split="validation", limit=validation_rows) if validation_rows else None,
            test=SplitSelection(split="test", limit=test_rows),
        ),
        train=TrainSettings(**{**settings, **(train or {})}),
        generation=GenerationSettings(max_new_tokens=max_new_tokens, max_source_length=128),
        models=models,
        **fields,
    )


@pytest.fixture(scope="session")
def tiny_experiment_config(tiny_model_dir, dialogsum_dir):
    """``build_experiment_config`` on the tiny T5 and ../shared/data/dialogsum: ``(name, models, rows, ...)``."""
    return functools.partial(build_experiment_config, dialogsum_dir, tiny_model_dir)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium driven by selenium, one per test module; skipped without Debian's chromium packages."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    chromium = _find_binary("/usr/bin/chromium", "chromium")
    driver_path = _find_binary("/usr/bin/chromedriver", "chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium or chromedriver is missing (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


def _find_binary(preferred: str, name: str) -> str | None:
    return preferred if Path(preferred).is_file() else shutil.which(name)


@pytest.fixture(autouse=True)
def results_json_follows_the_published_schema(request):
    """After each test, every results.json under its tmp_path must validate against results.schema.json."""
    tmp_path = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    written = sorted(tmp_path.rglob("results.json")) if tmp_path is not None else []
    if written:
        import jsonschema

        from sumlab.evaluation.schema import SCHEMA_FILE

        validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
        for path in written:
            data = json.loads(path.read_text(encoding="utf-8"))
            error = jsonschema.exceptions.best_match(validator.iter_errors(data))
            assert error is None, f"{path} breaks results.schema.json at {error.json_path}: {error.message}"
