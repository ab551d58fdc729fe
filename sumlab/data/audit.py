"""Data audit: row counts, token lengths, truncation, and what the tokenizer loses on a round trip.

Token lengths are counted on training's own features (``sumlab.text.features``), so the audit's truncation
is the truncation training will do: a causal model's prompt in its chat template, a summary with its end token.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sumlab.data.loading import DialogueExample
from sumlab.text.features import LABEL_PAD, tokenize_examples

PERCENTILES = (50, 90, 95, 99, 100)


@dataclass(frozen=True)
class LengthStats:
    """Token-length percentiles and how many examples exceed a maximum length."""

    percentiles: dict[int, int]
    max_length: int
    truncated: int
    count: int

    def to_json(self) -> dict:
        return {
            "percentiles": {f"p{p}": v for p, v in self.percentiles.items()},
            "max_length": self.max_length,
            "truncated": self.truncated,
            "truncated_percent": round(100 * self.truncated / self.count, 2) if self.count else 0.0,
        }


def length_stats(lengths: Sequence[int], max_length: int) -> LengthStats:
    """Percentiles of ``lengths`` and the number longer than ``max_length``."""
    values = np.asarray(lengths) if len(lengths) else np.zeros(1, dtype=int)
    percentiles = {p: int(np.percentile(values, p, method="higher")) for p in PERCENTILES}
    return LengthStats(percentiles, max_length, int((values > max_length).sum()), len(lengths))


def round_trip_losses(tokenizer, texts: Sequence[str], top: int = 5) -> dict:
    """What encoding then decoding changes: how many texts differ, and the characters most often lost."""
    changed = 0
    lost: Counter[str] = Counter()
    for text in texts:
        decoded = tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True)
        if decoded != text:
            changed += 1
            lost.update((Counter(text) - Counter(decoded)).elements())
    return {
        "texts_changed": changed,
        "texts": len(texts),
        "most_lost_characters": {repr(char): count for char, count in lost.most_common(top)},
    }


def token_lengths(
    examples: Sequence[DialogueExample], tokenizer, template: str, causal: bool = False
) -> tuple[list[int], list[int]]:
    """Each example's source and target length in tokens, as training builds them, before it truncates.

    The lengths are those of training's features (``tokenize_examples``) at unlimited maximum lengths. A
    causal model's source is its prompt (the chat template's, when the tokenizer has one), its target the
    summary and the closing EOS; a seq2seq model's are the encoder input and the labels.
    """
    features, _ = tokenize_examples(examples, tokenizer, template, sys.maxsize, sys.maxsize, causal=causal)
    if not causal:
        return [len(f["input_ids"]) for f in features], [len(f["labels"]) for f in features]
    prompts = [f["labels"].count(LABEL_PAD) for f in features]  # the prompt is masked out of the labels
    return prompts, [len(f["labels"]) - prompt for f, prompt in zip(features, prompts)]


def audit_examples(
    examples: Sequence[DialogueExample],
    tokenizer,
    template: str,
    max_source_length: int,
    max_target_length: int,
    round_trip_sample: int = 200,
    causal: bool = False,
) -> dict:
    """The audit of one split: counts, source and target token lengths, truncation, round-trip losses."""
    source_lengths, target_lengths = token_lengths(examples, tokenizer, template, causal)
    sample = [example.dialogue for example in examples[:round_trip_sample]]
    return {
        "rows": len(examples),
        "distinct_dialogues": len({example.dialogue for example in examples}),
        "source_tokens": length_stats(source_lengths, max_source_length).to_json(),
        "summary_tokens": length_stats(target_lengths, max_target_length).to_json(),
        "round_trip": round_trip_losses(tokenizer, sample),
    }
