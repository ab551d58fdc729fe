"""Tests for sumlab.audit: length percentiles, truncation counts, round-trip losses, a split's audit."""

from __future__ import annotations

import json

import pytest

from sumlab.data.audit import audit_examples, length_stats, round_trip_losses, token_lengths
from sumlab.data.loading import DialogueExample, load_split
from sumlab.text.prompts import TEMPLATES, render_prompt


class NewlineDroppingTokenizer:
    """Encodes characters as their code points but loses newlines, as sentencepiece T5 tokenizers do."""

    eos_token_id = 1

    def __call__(self, texts=None, text_target=None):
        texts = texts if texts is not None else text_target  # training encodes summaries as text_target
        if isinstance(texts, str):
            return {"input_ids": self._encode(texts)}
        return {"input_ids": [self._encode(text) for text in texts]}

    @staticmethod
    def _encode(text: str) -> list[int]:
        return [ord(char) for char in text if char != "\n"] + [1]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids if not (skip_special_tokens and i == 1))


def test_length_stats_on_hand_made_lengths():
    stats = length_stats(list(range(1, 101)), max_length=90)
    # method="higher": the smallest observed length at or above each percentile
    assert stats.percentiles == {50: 51, 90: 91, 95: 96, 99: 100, 100: 100}
    assert stats.truncated == 10  # 91..100
    assert stats.count == 100
    data = stats.to_json()
    assert data["percentiles"] == {"p50": 51, "p90": 91, "p95": 96, "p99": 100, "p100": 100}
    assert data["truncated_percent"] == 10.0
    assert data["max_length"] == 90


def test_length_exactly_at_the_maximum_is_not_truncated():
    stats = length_stats([5, 5, 6], max_length=5)
    assert stats.truncated == 1
    assert stats.to_json()["truncated_percent"] == pytest.approx(33.33)


def test_percentiles_are_observed_lengths_and_ordered():
    lengths = [3, 300, 17, 17, 42, 8, 512, 600]
    stats = length_stats(lengths, max_length=512)
    values = list(stats.percentiles.values())
    assert values == sorted(values)
    assert set(values) <= set(lengths)
    assert stats.percentiles[100] == max(lengths)
    assert stats.truncated == 1


def test_no_lengths_gives_zeros_not_an_error():
    data = length_stats([], max_length=10).to_json()
    assert data["truncated"] == 0
    assert data["truncated_percent"] == 0.0
    assert set(data["percentiles"].values()) == {0}


def test_round_trip_reports_lost_newlines():
    texts = ["#Person1#: hi\n#Person2#: hello\n#Person1#: bye", "no newline here", "one\nmore"]
    report = round_trip_losses(NewlineDroppingTokenizer(), texts)
    assert report["texts"] == 3
    assert report["texts_changed"] == 2
    assert report["most_lost_characters"] == {repr("\n"): 3}


def test_round_trip_of_a_lossless_tokenizer_changes_nothing(tiny_model):
    _, tokenizer = tiny_model
    texts = ["#Person1#: hi  there ,\n#Person2#: ok .", "Ünïcode “quotes” — and tabs\t"]
    assert round_trip_losses(tokenizer, texts) == {"texts_changed": 0, "texts": 2, "most_lost_characters": {}}


def test_audit_examples_on_real_rows(tiny_model, dialogsum_dir):
    _, tokenizer = tiny_model
    examples = load_split(str(dialogsum_dir), "test", limit=30)
    template = TEMPLATES["lab"]
    report = audit_examples(examples, tokenizer, template, max_source_length=256, max_target_length=32)
    json.dumps(report)  # plain JSON
    assert report["rows"] == 30
    assert report["distinct_dialogues"] == 10  # the test split has three references per dialogue

    source_lengths = [len(tokenizer(render_prompt(template, e.dialogue))["input_ids"]) for e in examples]
    summary_lengths = [len(tokenizer(e.summary)["input_ids"]) for e in examples]
    assert report["source_tokens"]["percentiles"]["p100"] == max(source_lengths)
    assert report["source_tokens"]["truncated"] == sum(length > 256 for length in source_lengths)
    assert report["summary_tokens"]["percentiles"]["p100"] == max(summary_lengths)
    assert report["summary_tokens"]["truncated"] == sum(length > 32 for length in summary_lengths)
    assert 0 < report["source_tokens"]["truncated"] < 30  # the limits were chosen to cut some, not all
    assert report["round_trip"] == {"texts_changed": 0, "texts": 30, "most_lost_characters": {}}


def test_audit_finds_round_trip_losses_and_limits_its_sample():
    examples = [DialogueExample(f"id{i}", f"#Person1#: line {i}\n#Person2#: ok", f"summary {i}") for i in range(5)]
    report = audit_examples(examples, NewlineDroppingTokenizer(), "{dialogue}", 100, 100, round_trip_sample=3)
    assert report["round_trip"]["texts"] == 3
    assert report["round_trip"]["texts_changed"] == 3
    assert report["round_trip"]["most_lost_characters"] == {repr("\n"): 3}
    assert report["distinct_dialogues"] == 5


# ---------------------------------------------------------------- counted as training builds its features

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>[user] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


@pytest.fixture(scope="module")
def chat_model_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama with a chat template, as an instruct model has one."""
    import shutil

    from transformers import AutoTokenizer

    directory = tmp_path_factory.mktemp("tiny-chat-llama") / "model"
    shutil.copytree(tiny_llama_dir, directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    return directory


def test_a_causal_audit_counts_the_chat_template_and_the_end_token_as_training_does(chat_model_dir, dialogsum_dir):
    from sumlab.config import ModelConfig
    from sumlab.models.loading import load_tokenizer
    from sumlab.text.features import LABEL_PAD, tokenize_examples

    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(chat_model_dir)))
    assert tokenizer.chat_template == CHAT_TEMPLATE
    examples = load_split(str(dialogsum_dir), "validation", limit=40)
    template = TEMPLATES["lab"]
    sources, targets = token_lengths(examples, tokenizer, template, causal=True)
    max_source, max_target = 160, 24
    features, counts = tokenize_examples(examples, tokenizer, template, max_source, max_target, causal=True)
    for source, target, feature, example in zip(sources, targets, features, examples):
        prompt = feature["labels"].count(LABEL_PAD)
        assert prompt == min(source, max_source)  # training's prompt, before it cut the middle out
        assert len(feature["labels"]) - prompt == min(target, max_target)
        summary = tokenizer(example.summary, add_special_tokens=False)["input_ids"]
        assert target == len(summary) + 1  # the end token counts
        plain = tokenizer(render_prompt(template, example.dialogue))["input_ids"]  # the count before #13
        assert source > len(plain)  # the chat template's tokens count
    report = audit_examples(examples, tokenizer, template, max_source, max_target, causal=True)
    assert report["source_tokens"]["truncated"] == counts.sources > 0
    assert report["summary_tokens"]["truncated"] == counts.targets > 0


def test_data_audit_counts_a_causal_model_as_training_does(chat_model_dir, dialogsum_dir, tmp_path):
    from typer.testing import CliRunner

    from sumlab.cli.app import app
    from sumlab.config import ModelConfig
    from sumlab.models.loading import load_tokenizer
    from sumlab.text.features import tokenize_examples

    out = tmp_path / "audit.json"
    args = ["data", "audit", "--data", str(dialogsum_dir), "--model", str(chat_model_dir), "--splits", "validation"]
    limits = ["--max-source-length", "160", "--max-target-length", "24", "--json", str(out)]
    result = CliRunner().invoke(app, [*args, *limits])
    assert result.exit_code == 0, f"{result.exception!r}\n{result.output}"
    report = json.loads(out.read_text(encoding="utf-8"))["validation"]
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(chat_model_dir)))
    examples = load_split(str(dialogsum_dir), "validation")
    _, counts = tokenize_examples(examples, tokenizer, TEMPLATES["lab"], 160, 24, causal=True)
    assert report["rows"] == counts.examples == 500
    assert report["source_tokens"]["truncated"] == counts.sources > 0
    assert report["summary_tokens"]["truncated"] == counts.targets > 0
