"""Faults of the CTranslate2 engine and export: each is one line on stderr, exit code 2, no traceback, and nothing
half-written (no predictions file, no export directory, no cache entry or staging directory)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from refusals import assert_says, refused_line

from sumlab.cli.app import main

DIALOGUE = "#Person1#: Could you book a table for two at seven?\n#Person2#: Of course. Under which name?"


@dataclass(frozen=True)
class Case:
    args: list[str]
    says: list[str]  # the error line contains each of these
    not_written: list[str] = field(default_factory=list)  # paths (in the work directory) that must not exist
    needs_ctranslate2: bool = True
    without_ctranslate2: bool = False  # run as if the optional package were not installed
    cpu_only: bool = False


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_model_dir, causal_tokenizer) -> Path:
    """A work directory with a dialogue, an existing export, a GPT-Neo model and prefix / prompt tuning adapters."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from sumlab.config import ModelConfig, PeftSettings
    from sumlab.models.loading import load_model
    from sumlab.models.peft_methods import add_peft

    work = tmp_path_factory.mktemp("engine-faults")
    (work / "dialogue.txt").write_text(DIALOGUE, encoding="utf-8")
    (work / "existing").mkdir()
    (work / "existing" / "keep.txt").write_text("mine", encoding="utf-8")
    neo = GPTNeoConfig(
        vocab_size=len(causal_tokenizer),
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        attention_types=[[["global", "local"], 1]],
        max_position_embeddings=256,
        window_size=32,
    )
    torch.manual_seed(0)
    GPTNeoForCausalLM(neo).save_pretrained(work / "gpt-neo")
    causal_tokenizer.save_pretrained(work / "gpt-neo")
    for method in ("prefix", "prompt"):
        base = load_model(ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32"))
        add_peft(base, PeftSettings(method=method, num_virtual_tokens=4)).save_pretrained(work / f"{method}-adapter")
    return work


def engine_cases(dialogsum: Path) -> dict[str, Case]:
    summarize = ["summarize", "dialogue.txt", "--model", "sumlab-tiny-t5"]
    fast = [*summarize, "--engine", "ctranslate2"]
    return {
        "missing extra (summarize)": Case(
            fast, ["--engine ctranslate2 needs the optional package", "pip install 'sumlab[fast]'"],
            needs_ctranslate2=False, without_ctranslate2=True,
        ),
        "missing extra (export)": Case(
            ["export", "sumlab-tiny-t5", "--out", "out-missing"],
            ["--format ctranslate2 needs the optional package", "pip install 'sumlab[fast]'"],
            ["out-missing"], needs_ctranslate2=False, without_ctranslate2=True,
        ),
        "architecture it cannot convert": Case(
            ["generate", "--model", "./gpt-neo", "--engine", "ctranslate2", "--data", str(dialogsum), "--limit", "2",
             "--out", "neo.jsonl"],
            ["CTranslate2 cannot convert", "gpt_neo", "use --engine torch"],
            ["neo.jsonl"],
        ),
        "prefix-tuned adapter": Case(
            ["summarize", "dialogue.txt", "--model", "./prefix-adapter", "--engine", "ctranslate2"],
            ["prefix tuning", "virtual tokens", "use --engine torch"],
        ),
        "prompt-tuned adapter": Case(
            ["export", "./prompt-adapter", "--out", "prompt-export"],
            ["prompt tuning", "use --engine torch"],
            ["prompt-export"],
        ),
        "float16 on a CPU": Case(
            [*fast, "--compute-type", "float16"], ["float16 needs a CUDA GPU", "int8"], cpu_only=True
        ),
        "bad --compute-type": Case(
            [*fast, "--compute-type", "fp8"], ["--compute-type 'fp8' is not one of", "int8_float32"],
            needs_ctranslate2=False,
        ),
        "bad --engine": Case([*summarize, "--engine", "onnx"], ["--engine 'onnx'", "ctranslate2"], needs_ctranslate2=False),
        "--compute-type without the engine": Case(
            [*summarize, "--compute-type", "int8"], ["--compute-type int8 is for --engine ctranslate2"],
            needs_ctranslate2=False,
        ),
        "export to an existing directory": Case(
            ["export", "sumlab-tiny-t5", "--out", "existing"], ["existing already exists", "--overwrite"]
        ),
        "export in a format it does not know": Case(
            ["export", "sumlab-tiny-t5", "--format", "onnx", "--out", "onnx-out"], ["--format 'onnx'"], ["onnx-out"],
            needs_ctranslate2=False,
        ),
        "export T5 in float16": Case(
            ["export", "sumlab-tiny-t5", "--compute-type", "float16", "--out", "t5-fp16"],
            ["refused for T5", "float16"],
            ["t5-fp16"],
        ),
    }  # fmt: skip


CASE_IDS = list(engine_cases(Path(".")))


def has_ctranslate2() -> bool:
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return True


def tree(path: Path) -> dict[str, bytes]:
    return {str(item.relative_to(path)): item.read_bytes() for item in sorted(path.rglob("*")) if item.is_file()}


@pytest.mark.parametrize("name", CASE_IDS)
def test_an_engine_fault_is_one_line_and_exit_code_2(name, workdir, dialogsum_dir, tmp_path, monkeypatch, capsys):
    case = engine_cases(dialogsum_dir)[name]
    if case.needs_ctranslate2 and not has_ctranslate2():
        pytest.skip("ctranslate2 is not installed (pip install 'sumlab[fast]')")
    if case.cpu_only and has_ctranslate2():
        import ctranslate2

        if ctranslate2.get_cuda_device_count():
            pytest.skip("this machine has a CUDA GPU")
    if case.without_ctranslate2:
        monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 now raises ImportError
    cache = tmp_path / "cache"
    monkeypatch.setenv("SUMLAB_CACHE", str(cache))
    monkeypatch.chdir(workdir)
    existing = tree(workdir / "existing")
    assert_says(refused_line(case.args, monkeypatch, capsys), *case.says)
    for path in case.not_written:
        assert not (workdir / path).exists()
    assert not [path.name for path in workdir.iterdir() if path.name.startswith(".")]  # no staging beside --out
    assert not cache.exists() or not any((cache / "ctranslate2").iterdir())  # no cache entry, no staging
    assert tree(workdir / "existing") == existing


def test_an_experiment_config_with_an_unknown_engine_is_refused_at_load(tmp_path, monkeypatch, capsys):
    config = tmp_path / "experiment.yaml"
    config.write_text(json.dumps({"name": "x", "generation": {"engine": "onnx"}}), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["sumlab", "run", str(config), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "generation.engine" in lines[0] and "ctranslate2" in lines[0]
    assert not (tmp_path / "out").exists()
