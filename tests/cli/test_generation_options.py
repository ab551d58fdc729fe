"""The generation options of `sumlab summarize` and `sumlab generate`: --max-source-length and --max-batch-tokens."""

from __future__ import annotations

import logging

from typer.testing import CliRunner

from sumlab.cli.app import app
from sumlab.cli.summarizer_options import SummarizerOptions
from sumlab.config import GenerationSettings
from sumlab.generation import batching

DIALOGUE = "#Person1#: Could you help me with my homework?\n#Person2#: Sure, what is it about?\n#Person1#: Maths."


def ok(*args: str):
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, f"{result.exception!r}\n{result.output}"
    return result


def test_the_options_reach_the_generation_settings():
    assert SummarizerOptions().generation(16) == GenerationSettings(batch_size=16)  # no cut, default budget
    settings = SummarizerOptions(max_source_length=300, max_batch_tokens=4096).generation(8)
    assert (settings.max_source_length, settings.max_batch_tokens, settings.batch_size) == (300, 4096, 8)


def test_summarize_cuts_at_max_source_length_and_says_so(tmp_path, tiny_model_dir, tiny_model, caplog):
    model, tokenizer = tiny_model
    cut = GenerationSettings(max_new_tokens=8, batch_size=1, max_source_length=12)
    expected = batching.summarize(model, tokenizer, [DIALOGUE], cut)[0]
    path = tmp_path / "dialogue.txt"
    path.write_text(DIALOGUE, encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sumlab"):
        result = ok("summarize", path, "--model", tiny_model_dir, "--max-new-tokens", "8", "--max-source-length", "12")
    assert result.stdout.strip() == expected
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("sumlab")]
    assert messages == [
        "1 of 1 prompt was longer than 12 tokens and was cut to 12 (--max-source-length / generation.max_source_length)"
    ]


def test_generate_passes_both_options_on(tmp_path, tiny_model_dir, dialogsum_dir, monkeypatch):
    seen: list[GenerationSettings] = []

    def spy(model, tokenizer, dialogues, settings, template):
        seen.append(settings)
        return ["a summary"] * len(dialogues)

    monkeypatch.setattr(batching, "summarize", spy)
    options = ["--model", tiny_model_dir, "--data", dialogsum_dir, "--limit", "2", "--out", tmp_path / "p.jsonl"]
    ok("generate", *options, "--batch-size", "4", "--max-batch-tokens", "1000", "--max-source-length", "256")
    ok("generate", *options, "--overwrite")
    assert [(s.batch_size, s.max_batch_tokens, s.max_source_length) for s in seen] == [(4, 1000, 256), (16, None, None)]


def test_the_options_are_documented():
    for command in ("summarize", "generate"):
        help_text = ok(command, "--help").stdout
        assert "--max-source-length" in help_text and "--max-batch-tokens" in help_text
