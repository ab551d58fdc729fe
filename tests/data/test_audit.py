"""Tests for sumlab.audit: length percentiles, truncation counts, round-trip losses, a split's audit."""

from __future__ import annotations

import json

import pytest

from sumlab.data.audit import audit_examples, length_stats, round_trip_losses
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
