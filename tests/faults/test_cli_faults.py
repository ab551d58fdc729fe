"""Fault suite, command line: wrong paths, a model directory of the wrong kind, outputs that exist, bad option
values. Each case is refused in one line with a hint, exit code 2, and leaves the work directory as it was."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from refusals import assert_says, run_refused

DIALOGUE = "#Person1#: Could you help me?\n#Person2#: Sure."


def make_dir(work: Path, name: str, files: dict[str, str] | None = None) -> None:
    directory = work / name
    directory.mkdir(parents=True, exist_ok=True)
    for file, text in (files or {}).items():
        (directory / file).write_text(text, encoding="utf-8")


def adapter(work: Path, name: str, base: str | None) -> None:
    config = {"peft_type": "LORA", "base_model_name_or_path": base, "r": 4, "target_modules": ["q", "v"]}
    make_dir(work, name, {"adapter_config.json": json.dumps(config)})


def model_without_tokenizer(work: Path, model: Path) -> None:
    (work / "bare").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model / name, work / "bare" / name)


@dataclass(frozen=True)
class Case:
    args: list[str]  # {model}: the tiny T5's directory, {data}: DialogSum's
    says: tuple[str, ...]  # the error line holds each of these
    prepare: Callable[[Path, Path], None] = lambda work, model: None  # (work directory, tiny model) -> inputs


SUMMARIZE = ["summarize", "dialogue.txt", "--max-new-tokens", "4"]
GENERATE = ["generate", "--data", "{data}", "--limit", "1", "--max-new-tokens", "4", "--out", "out.jsonl"]
EXPECTED = "expected a model directory, an adapter directory or a sumlab run directory"

CASES = {
    # --model of the wrong kind, or nowhere
    "model-empty-directory": Case(
        [*SUMMARIZE, "--model", "empty"],
        ("empty: no config.json, adapter_config.json or model/ found", EXPECTED),
        lambda work, model: make_dir(work, "empty"),
    ),
    "model-unfinished-run": Case(
        [*SUMMARIZE, "--model", "runs/x"],
        ("runs/x: a run directory without model/: its training did not finish",),
        lambda work, model: make_dir(work, "runs/x/checkpoints/checkpoint-5"),
    ),
    "model-run-with-empty-model-dir": Case(
        [*SUMMARIZE, "--model", "runs/y"],
        ("runs/y/model: no config.json or adapter_config.json found", EXPECTED),
        lambda work, model: make_dir(work, "runs/y/model"),
    ),
    "model-is-a-file": Case(
        [*SUMMARIZE, "--model", "./weights.bin"],
        ("weights.bin is a file, not a directory", EXPECTED),
        lambda work, model: (work / "weights.bin").write_bytes(b"\0" * 16),
    ),
    "model-path-missing": Case([*SUMMARIZE, "--model", "./no-such-model"], ("model path not found: no-such-model",)),
    "model-without-tokenizer": Case(
        [*GENERATE, "--model", "bare"],
        ("bare: a model directory without a tokenizer", "pass --tokenizer"),
        model_without_tokenizer,
    ),
    "adapter-on-a-missing-base": Case(
        [*SUMMARIZE, "--model", "lora"],
        ("lora: an adapter trained on /nowhere/base-model, which is not here", "sumlab merge"),
        lambda work, model: adapter(work, "lora", "/nowhere/base-model"),
    ),
    "adapter-without-a-base": Case(
        [*SUMMARIZE, "--model", "lora"],
        ("lora: an adapter that records no base model",),
        lambda work, model: adapter(work, "lora", None),
    ),
    "adapter-config-not-json": Case(
        [*SUMMARIZE, "--model", "lora"],
        ("adapter_config.json: not valid JSON",),
        lambda work, model: make_dir(work, "lora", {"adapter_config.json": "{'peft_type': 'LORA'"}),
    ),
    "tokenizer-directory-without-tokenizer": Case(
        [*SUMMARIZE, "--model", "{model}", "--tokenizer", "empty"],
        ("empty: no tokenizer.json or tokenizer_config.json found", "--tokenizer"),
        lambda work, model: make_dir(work, "empty"),
    ),
    "inspect-empty-directory": Case(
        ["inspect", "empty"],
        ("empty: no config.json, adapter_config.json or model/ found",),
        lambda w, m: make_dir(w, "empty"),
    ),
    # outputs that exist
    "generate-output-exists": Case(
        [*GENERATE, "--model", "{model}"],
        ("out.jsonl already exists", "--overwrite"),
        lambda work, model: (work / "out.jsonl").write_text("earlier predictions\n", encoding="utf-8"),
    ),
    "compare-output-exists": Case(
        ["compare", "predictions.jsonl", "--out", "report"],
        ("report already exists", "--overwrite"),
        lambda work, model: make_dir(work, "report", {"report.html": "<html>earlier</html>"}),
    ),
    "merge-output-exists": Case(
        ["merge", "--adapter", "lora", "--out", "merged"],
        ("merged already exists", "--overwrite"),
        lambda work, model: (adapter(work, "lora", str(model)), make_dir(work, "merged", {"config.json": "{}"})),
    ),
    # merge --adapter of the wrong kind
    "merge-full-model-as-adapter": Case(
        ["merge", "--adapter", "runs/full", "--out", "merged"],
        ("no adapter_config.json in runs/full/model: it holds a full model", "adapter directory"),
        lambda work, model: make_dir(work, "runs/full/model", {"config.json": "{}"}),
    ),
    "merge-adapter-on-a-missing-base": Case(
        ["merge", "--adapter", "lora", "--out", "merged"],
        ("was trained on /nowhere/base-model, which is not here", "pass --model BASE"),
        lambda work, model: adapter(work, "lora", "/nowhere/base-model"),
    ),
    "train-from-an-adapter": Case(
        ["train", "train.yaml"],
        ("lora is an adapter, and training starts from a full model", "sumlab merge"),
        lambda work, model: (
            adapter(work, "lora", str(model)),
            (work / "train.yaml").write_text("model: {name_or_path: lora}\n", encoding="utf-8"),
        ),
    ),
    # bad option values
    "generate-name-with-a-path": Case([*GENERATE, "--model", "{model}", "--name", "../up"], ("invalid name '../up'",)),
    "generate-limit-zero": Case([*GENERATE, "--model", "{model}", "--limit", "0"], ("Invalid value for '--limit'",)),
    "num-beams-not-a-number": Case(
        [*SUMMARIZE, "--model", "{model}", "--num-beams", "two"], ("Invalid value for '--num-beams'", "--help")
    ),
    "unknown-option": Case(["evaluate", "predictions.jsonl", "--bogus"], ("No such option: --bogus",)),
    "unknown-command": Case(["sumarize"], ("No such command 'sumarize'",)),
    "evaluate-unknown-aggregate": Case(["evaluate", "p.jsonl", "--aggregate", "median"], ("unknown --aggregate",)),
    "unknown-dtype": Case(
        [*SUMMARIZE, "--model", "{model}", "--dtype", "half"], ("options: dtype:", "see --help for the values")
    ),
    "template-without-dialogue-slot": Case(
        [*SUMMARIZE, "--model", "{model}", "--template", "Summarize this:"], ("{dialogue}",)
    ),
    "audit-without-splits": Case(["data", "audit", "--data", "{data}", "--splits", " , "], ("no split in --splits",)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_command_line_is_refused_in_one_line(name, tmp_path, tiny_model_dir, dialogsum_dir, monkeypatch, capsys):
    case = CASES[name]
    (tmp_path / "dialogue.txt").write_text(DIALOGUE, encoding="utf-8")
    case.prepare(tmp_path, tiny_model_dir)
    args = [arg.format(model=tiny_model_dir, data=dialogsum_dir) for arg in case.args]
    line = run_refused(args, tmp_path, monkeypatch, capsys)
    assert_says(line, *case.says)
