"""Tokenize dialogue/summary pairs for training; pad per batch; mask label padding with -100."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import DataCollatorForSeq2Seq

from sumlab.data import DialogueExample
from sumlab.prompts import render_prompt

LABEL_PAD = -100  # ignored by the cross-entropy loss


@dataclass(frozen=True)
class TruncationCounts:
    """How many examples lost tokens at the maximum source and target lengths."""

    sources: int
    targets: int
    examples: int


def tokenize_examples(
    examples: Sequence[DialogueExample],
    tokenizer,
    template: str,
    max_source_length: int,
    max_target_length: int,
) -> tuple[list[dict], TruncationCounts]:
    """Token ids for each example, unpadded: ``input_ids``, ``attention_mask``, ``labels``.

    Returns:
        The features, and how many sources and targets were truncated.
    """
    prompts = [render_prompt(template, example.dialogue) for example in examples]
    sources = tokenizer(prompts)["input_ids"]
    targets = tokenizer(text_target=[example.summary for example in examples])["input_ids"]
    features = [
        {
            "input_ids": _truncate(source, max_source_length, tokenizer.eos_token_id),
            "attention_mask": [1] * min(len(source), max_source_length),
            "labels": _truncate(target, max_target_length, tokenizer.eos_token_id),
        }
        for source, target in zip(sources, targets)
    ]
    counts = TruncationCounts(
        sources=sum(len(source) > max_source_length for source in sources),
        targets=sum(len(target) > max_target_length for target in targets),
        examples=len(examples),
    )
    return features, counts


def _truncate(ids: list[int], max_length: int, eos_id: int | None) -> list[int]:
    """Cut ``ids`` to ``max_length``, keeping the closing EOS token so the model still learns to stop."""
    if len(ids) <= max_length:
        return list(ids)
    if eos_id is not None and ids[-1] == eos_id:
        return list(ids[: max_length - 1]) + [eos_id]
    return list(ids[:max_length])


def dynamic_padding_collator(tokenizer, model=None) -> DataCollatorForSeq2Seq:
    """Pads each batch to its own longest sequence; label padding is -100 so it never counts in the loss."""
    return DataCollatorForSeq2Seq(tokenizer, model=model, padding="longest", label_pad_token_id=LABEL_PAD)


def lab_features(examples: Sequence[DialogueExample], tokenizer, template: str, length: int = 512) -> list[dict]:
    """The lab's preprocessing, for benchmarks only: everything padded to 512 and pad tokens left in the labels."""
    prompts = [render_prompt(template, example.dialogue) for example in examples]
    inputs = tokenizer(prompts, padding="max_length", truncation=True, max_length=length)
    labels = tokenizer([example.summary for example in examples], padding="max_length", truncation=True,
                       max_length=length)["input_ids"]
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(inputs["input_ids"], inputs["attention_mask"], labels)
    ]
