"""CTranslate2 on the demo's model fine-tuned: the torch path's summaries, and int8 within a ROUGE point of float32.

The bundled tiny T5 (sumlab-tiny-t5) is fine-tuned briefly on the demo corpus, as ``sumlab demo`` does at length
(its learning rate, 60 steps of 8 instead of 2 epochs), then summarizes 50 real DialogSum test dialogues. Slow:
the training takes most of a minute on a busy CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ctranslate2")

from sumlab.config import GenerationSettings, ModelConfig, TrainConfig, build_config  # noqa: E402
from sumlab.evaluation.rouge import score_predictions  # noqa: E402
from sumlab.generation.batching import summarize  # noqa: E402
from sumlab.generation.ctranslate2_engine import load_engine  # noqa: E402
from sumlab.models.loading import load_model, load_tokenizer  # noqa: E402

pytestmark = pytest.mark.slow

DEMO_GENERATION = GenerationSettings(max_new_tokens=64, no_repeat_ngram_size=3, batch_size=16)  # demo.yaml's


@pytest.fixture(scope="module")
def finetuned_t5(tmp_path_factory) -> ModelConfig:
    """sumlab-tiny-t5 after 60 steps of full fine-tuning on the demo corpus (demo.yaml's learning rate)."""
    from sumlab.training.trainer import train

    config = build_config(
        TrainConfig,
        {
            "name": "demo-full",
            "model": {"name_or_path": "sumlab-tiny-t5", "dtype": "float32"},
            "data": {"source": "sumlab-demo", "train": {"split": "train", "limit": 480}, "validation": None},
            "train": {
                "learning_rate": 2e-3,
                "warmup_ratio": 0.05,
                "max_steps": 60,
                "per_device_train_batch_size": 8,
                "max_source_length": 256,
                "max_target_length": 64,
                "group_by_length": True,
                "precision": "float32",
                "tensorboard": False,
                "save_total_limit": 1,
            },
        },
    )
    result = train(config, out_dir=tmp_path_factory.mktemp("finetuned") / "run")
    return ModelConfig(name_or_path=str(result.model_dir), dtype="float32")


@pytest.fixture(scope="module")
def test_groups(dialogsum_dir) -> dict[str, list[str]]:
    """The first 50 distinct DialogSum test dialogues and their 3 references each."""
    groups: dict[str, list[str]] = {}
    lines = (dialogsum_dir / "test.jsonl").read_text(encoding="utf-8").splitlines()[:150]
    for row in map(json.loads, lines):
        groups.setdefault(row["dialogue"], []).append(row["summary"])
    return groups


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path_factory, monkeypatch) -> Path:
    cache = tmp_path_factory.getbasetemp() / "ct2-cache-finetuned"
    monkeypatch.setenv("SUMLAB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize(
    "settings",
    [DEMO_GENERATION, DEMO_GENERATION.model_copy(update={"no_repeat_ngram_size": 0})],
    ids=["demo-settings", "greedy"],
)
def test_float32_gives_the_torch_summaries_on_the_finetuned_t5(finetuned_t5, test_groups, settings, record_property):
    dialogues = list(test_groups)
    reference = summarize(load_model(finetuned_t5), load_tokenizer(finetuned_t5), dialogues, settings)
    engine, tokenizer = load_engine(finetuned_t5, "float32")
    fast = summarize(engine, tokenizer, dialogues, settings)
    same = sum(a == b for a, b in zip(reference, fast, strict=True))
    record_property("same_summaries", f"{same}/{len(dialogues)}")
    print(f"fine-tuned tiny T5, {settings.no_repeat_ngram_size=}: {same}/{len(dialogues)} summaries the same")
    assert same >= 0.95 * len(dialogues)


def test_int8_rouge1_is_within_a_point_of_float32_on_the_finetuned_t5(finetuned_t5, test_groups):
    dialogues, references = list(test_groups), list(test_groups.values())
    rouge1 = {}
    for compute_type in ("float32", "int8"):
        engine, tokenizer = load_engine(finetuned_t5, compute_type)
        summaries = summarize(engine, tokenizer, dialogues, DEMO_GENERATION)
        rouge1[compute_type] = score_predictions(summaries, references).summary["rouge1"].mean
    print(f"fine-tuned tiny T5 ROUGE-1: {rouge1}")
    assert rouge1["float32"] > 0.12  # it learned to summarize a little (the pretrained base scores about 0.10)
    assert abs(rouge1["int8"] - rouge1["float32"]) <= 0.01
