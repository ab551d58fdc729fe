"""The CTranslate2 engine: the torch path's summaries, a conversion cache keyed by content, adapters and export.

Equivalence runs on 50 real DialogSum test dialogues: the bundled tiny T5 (pretrained, sumlab-tiny-t5) and the
tiny Llama of conftest, float32, against ``summarize`` with torch (the reference). The fine-tuned tiny T5 and
int8 on it are in test_ctranslate2_finetuned.py (slow: it trains).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("ctranslate2")

from typer.testing import CliRunner  # noqa: E402

from sumlab.cli.app import app  # noqa: E402
from sumlab.config import GenerationSettings, ModelConfig, PeftSettings  # noqa: E402
from sumlab.evaluation.rouge import score_predictions  # noqa: E402
from sumlab.generation import conversion  # noqa: E402
from sumlab.generation.batching import summarize  # noqa: E402
from sumlab.generation.conversion import (  # noqa: E402
    MARKER,
    cache_key,
    cache_root,
    conversion_source,
    converted_model,
)
from sumlab.generation.ctranslate2_engine import CTranslate2Engine, load_engine  # noqa: E402
from sumlab.models.adapters import attach_adapter  # noqa: E402
from sumlab.models.loading import load_model, load_tokenizer  # noqa: E402
from sumlab.models.peft_methods import add_peft  # noqa: E402

SAME_SHARE = 0.95  # the bar: at least 95% of the summaries are the torch path's


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def test_groups(dialogsum_dir) -> dict[str, list[str]]:
    """The first 50 distinct DialogSum test dialogues and their 3 references each."""
    groups: dict[str, list[str]] = {}
    for row in read_jsonl(dialogsum_dir / "test.jsonl")[:150]:
        groups.setdefault(row["dialogue"], []).append(row["summary"])
    assert len(groups) == 50
    return groups


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ct2-cache")


@pytest.fixture(autouse=True)
def cache_in_tmp(module_cache, monkeypatch) -> Path:
    """Conversions go to a temporary cache shared by this module's tests, never to ~/.cache."""
    monkeypatch.setenv("SUMLAB_CACHE", str(module_cache))
    return module_cache


def torch_and_ct2(config: ModelConfig, dialogues: list[str], settings: GenerationSettings, compute_type="float32"):
    """The summaries of torch (the reference) and of CTranslate2, same settings."""
    model, tokenizer = load_model(config), load_tokenizer(config)
    engine, engine_tokenizer = load_engine(config, compute_type)
    return summarize(model, tokenizer, dialogues, settings), summarize(engine, engine_tokenizer, dialogues, settings)


def same_count(first: list[str], second: list[str]) -> int:
    return sum(a == b for a, b in zip(first, second, strict=True))


# ---------------------------------------------------------------- equivalence with torch


TINY_T5 = ModelConfig(name_or_path="sumlab-tiny-t5", dtype="float32")


@pytest.mark.parametrize(
    "settings",
    [
        GenerationSettings(max_new_tokens=64, batch_size=16),
        GenerationSettings(max_new_tokens=64, batch_size=16, no_repeat_ngram_size=3),  # the demo's
    ],
    ids=["greedy", "greedy-no-repeat-3"],
)
def test_float32_gives_the_torch_summaries_on_the_tiny_t5(settings, test_groups, record_property):
    reference, fast = torch_and_ct2(TINY_T5, list(test_groups), settings)
    same = same_count(reference, fast)
    record_property("same_summaries", f"{same}/{len(reference)}")
    print(f"tiny T5, {settings.no_repeat_ngram_size=}: {same}/{len(reference)} summaries the same")
    assert same >= SAME_SHARE * len(reference)
    assert len(set(fast)) > 10  # real, varied text, not one degenerate string


def test_float32_gives_the_torch_summaries_on_a_tiny_llama(tiny_llama_dir, test_groups, record_property):
    config = ModelConfig(name_or_path=str(tiny_llama_dir), dtype="float32")
    reference, fast = torch_and_ct2(config, list(test_groups), GenerationSettings(max_new_tokens=32, batch_size=16))
    same = same_count(reference, fast)
    record_property("same_summaries", f"{same}/{len(reference)}")
    print(f"tiny Llama: {same}/{len(reference)} summaries the same")
    assert same >= SAME_SHARE * len(reference)


@pytest.mark.parametrize(
    "fields",
    [
        {"num_beams": 4},
        {"num_beams": 4, "length_penalty": 0.6},
        {"num_beams": 3, "length_penalty": 2.0},
    ],
    ids=["beams-4", "beams-4-lp-0.6", "beams-3-lp-2"],
)
def test_beam_search_and_length_penalty_give_the_torch_summaries(fields, test_groups):
    """Beam scores match too: CTranslate2 would scale T5's output (transformers 5 says every T5 is tied)."""
    dialogues = list(test_groups)[:12]
    settings = GenerationSettings(max_new_tokens=40, batch_size=4, **fields)
    reference, fast = torch_and_ct2(TINY_T5, dialogues, settings)
    assert same_count(reference, fast) >= 11


def test_beams_on_a_causal_model_give_the_torch_summaries(tiny_llama_dir, test_groups):
    config = ModelConfig(name_or_path=str(tiny_llama_dir), dtype="float32")
    settings = GenerationSettings(max_new_tokens=24, batch_size=4, num_beams=3, length_penalty=0.8)
    reference, fast = torch_and_ct2(config, list(test_groups)[:8], settings)
    assert same_count(reference, fast) >= 7


def test_max_new_tokens_counts_the_same_tokens(test_groups):
    """CTranslate2's max_decoding_length (seq2seq) and max_length (causal, prompt excluded) are max_new_tokens."""
    dialogues = list(test_groups)[:6]
    engine, tokenizer = load_engine(TINY_T5, "float32")
    model = load_model(TINY_T5)
    for new_tokens in (1, 5):
        settings = GenerationSettings(max_new_tokens=new_tokens, batch_size=6)
        assert summarize(engine, tokenizer, dialogues, settings) == summarize(model, tokenizer, dialogues, settings)


def test_int8_rouge1_is_within_a_point_of_float32(test_groups):
    dialogues, references = list(test_groups), list(test_groups.values())
    settings = GenerationSettings(max_new_tokens=64, batch_size=16, no_repeat_ngram_size=3)
    rouge1 = {}
    for compute_type in ("float32", "int8"):
        engine, tokenizer = load_engine(TINY_T5, compute_type)
        assert engine.compute_type == compute_type
        summaries = summarize(engine, tokenizer, dialogues, settings)
        rouge1[compute_type] = score_predictions(summaries, references).summary["rouge1"].mean
    print(f"tiny T5 ROUGE-1: {rouge1}")
    assert abs(rouge1["int8"] - rouge1["float32"]) <= 0.01


def test_token_counts_match_the_torch_path(test_groups):
    """generate_from_ids returns how many tokens each summary took (the server reports them) as torch does."""
    from sumlab.generation.batching import generate_from_ids
    from sumlab.text.encoding import prompt_ids
    from sumlab.text.prompts import TEMPLATES

    model, tokenizer = load_model(TINY_T5), load_tokenizer(TINY_T5)
    engine, _ = load_engine(TINY_T5, "float32")
    ids = prompt_ids(tokenizer, TEMPLATES["lab"], list(test_groups)[:4], 512, causal=False)
    settings = GenerationSettings(max_new_tokens=40)
    with torch.inference_mode():
        model.eval()
        expected = generate_from_ids(model, tokenizer, ids, settings)
    assert generate_from_ids(engine, tokenizer, ids, settings) == expected


# ---------------------------------------------------------------- the conversion cache


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def perturb_weights(directory: Path) -> None:
    """Save the model in ``directory`` again with one weight changed (as a retraining would)."""
    from sumlab.models.adapters import save_model_dir

    config = ModelConfig(name_or_path=str(directory), dtype="float32")
    model, tokenizer = load_model(config), load_tokenizer(config)
    with torch.no_grad():
        model.get_output_embeddings().weight[5] += 1.0
    save_model_dir(model, tokenizer, directory)


def key_of(directory: Path, compute_type: str = "float32") -> str:
    return cache_key(conversion_source(ModelConfig(name_or_path=str(directory))), compute_type)


def test_cache_key_is_the_content_the_compute_type_and_nothing_else(tiny_model_dir, tmp_path):
    first = copy_model(tiny_model_dir, tmp_path / "first")
    second = copy_model(tiny_model_dir, tmp_path / "elsewhere" / "second")
    assert key_of(first) == key_of(second)  # where the files are does not matter
    assert key_of(first, "int8") != key_of(first)
    perturb_weights(second)
    assert key_of(second) != key_of(first)
    (first / "tokenizer_config.json").write_text(
        (first / "tokenizer_config.json").read_text(encoding="utf-8").replace("512", "513"), encoding="utf-8"
    )
    assert key_of(first) != key_of(copy_model(tiny_model_dir, tmp_path / "third"))  # the tokenizer counts too


def test_a_conversion_is_reused_and_a_retrained_model_is_not_served_stale(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SUMLAB_CACHE", str(tmp_path / "cache"))
    directory = copy_model(tiny_model_dir, tmp_path / "model")
    config = ModelConfig(name_or_path=str(directory), dtype="float32")
    entry = converted_model(config, "float32")
    assert (entry / MARKER).is_file() and entry.parent == cache_root()

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    with monkeypatch.context() as patch:
        patch.setattr(conversion, "build_ctranslate2_model", no_second_conversion)
        assert converted_model(config, "float32") == entry

    perturb_weights(directory)
    retrained = converted_model(config, "float32")
    assert retrained != entry
    dialogues = ["#Person1#: Is the shop open on Sunday?\n#Person2#: Only in the morning, from nine to twelve."]
    settings = GenerationSettings(max_new_tokens=12)
    engine, tokenizer = load_engine(config, "float32")
    assert engine.directory == retrained
    assert summarize(engine, tokenizer, dialogues, settings) == summarize(
        load_model(config), tokenizer, dialogues, settings
    )


def test_a_conversion_killed_halfway_leaves_no_cache_entry(tiny_model_dir, tmp_path, monkeypatch):
    """An exception after CTranslate2 wrote its files (as a kill would) leaves neither an entry nor its staging."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SUMLAB_CACHE", str(root))
    stale = root / "ctranslate2" / ".tmp-1-dead"  # what a killed conversion left a day ago
    stale.mkdir(parents=True)
    (stale / "model.bin").write_bytes(b"half")
    os.utime(stale, (0, 0))
    config = ModelConfig(name_or_path=str(tiny_model_dir))
    written = []

    def killed(out, tokenizer, label):
        written.extend(path.name for path in out.iterdir())
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(conversion, "_check_vocabulary", killed)
        with pytest.raises(KeyboardInterrupt):
            converted_model(config, "float32")
    assert "model.bin" in written  # it was killed after CTranslate2 had written the model
    assert list((root / "ctranslate2").iterdir()) == []  # no entry, no staging, and the stale one is gone
    entry = converted_model(config, "float32")  # the next run converts afresh
    assert (entry / MARKER).is_file()


# ---------------------------------------------------------------- adapters, run directories, export, CLI


@pytest.fixture(scope="module")
def lora_adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny T5 whose weights change its output (B is not zero), saved as a run's model/."""
    torch.manual_seed(0)
    model = add_peft(
        load_model(ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32")), PeftSettings(method="lora")
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    run_dir = tmp_path_factory.mktemp("lora-run")
    model.save_pretrained(run_dir / "model")
    load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir))).save_pretrained(run_dir / "model")
    return run_dir


def test_a_lora_run_is_merged_then_gives_the_torch_summaries(lora_adapter_dir, tiny_model_dir, test_groups):
    dialogues = list(test_groups)[:10]
    settings = GenerationSettings(max_new_tokens=16, batch_size=5)
    base = load_model(ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32"))
    peft_model = attach_adapter(base, lora_adapter_dir)
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(lora_adapter_dir / "model")))
    reference = summarize(peft_model, tokenizer, dialogues, settings)
    plain = summarize(load_model(ModelConfig(name_or_path=str(tiny_model_dir))), tokenizer, dialogues, settings)
    assert reference != plain  # the adapter matters
    engine, engine_tokenizer = load_engine(ModelConfig(name_or_path=str(lora_adapter_dir)), "float32")
    assert same_count(reference, summarize(engine, engine_tokenizer, dialogues, settings)) >= 9


def invoke(*args):
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, [str(arg) for arg in args])


def test_export_writes_a_model_that_ctranslate2_runs(tmp_path, test_groups):
    out = tmp_path / "exported"
    result = invoke("export", "--format", "ctranslate2", "sumlab-tiny-t5", "--out", out, "--compute-type", "int8")
    assert result.exit_code == 0, result.output
    assert {"model.bin", "config.json", "hf", MARKER} <= {path.name for path in out.iterdir()}
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging left beside it
    assert json.loads((out / MARKER).read_text())["compute_type"] == "int8"
    engine = CTranslate2Engine.load(out, "int8")
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(out / "hf")))
    summaries = summarize(engine, tokenizer, list(test_groups)[:3], GenerationSettings(max_new_tokens=8))
    assert all(summaries)


def test_generate_with_the_ctranslate2_engine_writes_the_torch_predictions(dialogsum_dir, tmp_path):
    common = ["generate", "--model", "sumlab-tiny-t5", "--data", dialogsum_dir, "--limit", "6"]
    common += ["--max-new-tokens", "16", "--batch-size", "4"]
    assert invoke(*common, "--out", tmp_path / "torch.jsonl").exit_code == 0
    result = invoke(*common, "--engine", "ctranslate2", "--compute-type", "float32", "--out", tmp_path / "ct2.jsonl")
    assert result.exit_code == 0, result.output

    def summaries(name: str) -> list[str]:
        return [next(iter(row["predictions"].values())) for row in read_jsonl(tmp_path / name)]

    assert summaries("ct2.jsonl") == summaries("torch.jsonl")


def test_an_experiment_generates_with_its_configured_engine(
    tiny_experiment_config, lora_adapter_dir, tiny_model_dir, tmp_path, monkeypatch
):
    from sumlab.config import ModelEntry
    from sumlab.experiment.run import run_experiment

    monkeypatch.setenv("SUMLAB_CACHE", str(tmp_path / "cache"))

    models = [
        ModelEntry(name="original", kind="zero_shot"),
        ModelEntry(name="adapter", kind="pretrained", path=str(lora_adapter_dir)),
    ]
    outcomes = {}
    for engine in ("torch", "ctranslate2"):
        config = tiny_experiment_config(f"engine-{engine}", models, (None, None, 6))
        config.generation = config.generation.model_copy(update={"engine": engine})
        root, _ = run_experiment(config, out_dir=tmp_path / engine)
        outcomes[engine] = {
            name: [row["predictions"][name] for row in read_jsonl(root / "predictions" / f"{name}.jsonl")]
            for name in ("original", "adapter")
        }
    assert len(list(cache_root().iterdir())) == 2  # the base and the merged adapter were converted
    assert outcomes["ctranslate2"] == outcomes["torch"]


def test_engine_settings_are_checked_in_configs():
    from pydantic import ValidationError

    assert GenerationSettings(engine="ctranslate2", compute_type="int8").compute_type == "int8"
    with pytest.raises(ValidationError, match="engine"):
        GenerationSettings(engine="onnx")
    with pytest.raises(ValidationError, match="compute_type int8 is for engine ctranslate2"):
        GenerationSettings(compute_type="int8")


def test_beams_with_no_repeat_ngram_warn_that_summaries_may_differ(test_groups, monkeypatch, caplog):
    """CTranslate2 renormalizes after blocking repeated n-grams (transformers does not): beam scores differ."""
    from sumlab.generation import ctranslate2_engine

    monkeypatch.setattr(ctranslate2_engine, "_warned", set())
    engine, tokenizer = load_engine(TINY_T5, "float32")
    settings = GenerationSettings(max_new_tokens=8, num_beams=2, no_repeat_ngram_size=3)
    with caplog.at_level("WARNING", logger=ctranslate2_engine.__name__):
        summarize(engine, tokenizer, list(test_groups)[:4], settings)
        summarize(engine, tokenizer, list(test_groups)[:4], settings)
    warnings = [record for record in caplog.records if "no_repeat_ngram_size" in record.getMessage()]
    assert len(warnings) == 1  # once per process


# ---------------------------------------------------------------- workers


@pytest.mark.parametrize("count", [0, 1, 5, 16, 17])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_split_evenly_keeps_order_and_balances_the_parts(count, parts):
    from sumlab.generation.ctranslate2_engine import split_evenly

    items = list(range(count))
    split = split_evenly(items, parts)
    assert [item for part in split for item in part] == items
    assert len(split) == max(1, min(parts, count))
    sizes = [len(part) for part in split]
    assert max(sizes) - min(sizes) <= 1
    assert count == 0 or min(sizes) >= 1


@pytest.mark.parametrize("causal", [False, True], ids=["t5", "llama"])
def test_workers_give_the_summaries_of_one_worker(causal, tiny_llama_dir, test_groups):
    """Each batch split between 3 single-threaded workers gives what one worker gives for the whole batch."""
    from sumlab.generation.conversion import HF_DIR, converted_model

    config = ModelConfig(name_or_path=str(tiny_llama_dir), dtype="float32") if causal else TINY_T5
    directory = converted_model(config, "float32")
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(directory / HF_DIR)))
    one = CTranslate2Engine.load(directory, "float32", device="cpu", threads=1)
    three = CTranslate2Engine.load(directory, "float32", device="cpu", threads=3)
    assert (one.workers, three.workers) == (1, 3)
    settings = GenerationSettings(max_new_tokens=32, batch_size=16)
    dialogues = list(test_groups)
    assert summarize(three, tokenizer, dialogues, settings) == summarize(one, tokenizer, dialogues, settings)


def test_summarize_queues_every_batch_of_an_engine_before_it_waits(test_groups):
    """The workers never idle between batches: all batches are submitted before the first result is awaited."""
    engine, tokenizer = load_engine(TINY_T5, "float32")
    events: list[str] = []

    class Recorded:
        def __init__(self, pending):
            self.pending = pending

        def result(self):
            events.append("result")
            return self.pending.result()

    class RecordingEngine:
        def __getattr__(self, name):
            return getattr(engine, name)

        def submit(self, *args):
            events.append("submit")
            return Recorded(engine.submit(*args))

    settings = GenerationSettings(max_new_tokens=8, batch_size=4)
    dialogues = list(test_groups)[:12]
    assert summarize(RecordingEngine(), tokenizer, dialogues, settings) == summarize(
        engine, tokenizer, dialogues, settings
    )
    batches = events.count("submit")
    assert batches >= 3  # 12 dialogues, at most 4 a batch
    assert events == ["submit"] * batches + ["result"] * batches, events


def test_loading_an_engine_keeps_torch_threads(tiny_model_dir):
    """CTranslate2 sets the loading thread's OpenMP threads to its own (1 a worker): torch's must stay as they were."""
    from sumlab.generation.conversion import converted_model

    directory = converted_model(TINY_T5, "float32")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        CTranslate2Engine.load(directory, "float32", device="cpu", threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
