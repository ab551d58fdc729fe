"""Tokenize dialogue/summary pairs for training; pad per batch; mask label padding with -100.

A seq2seq model reads the prompt and is trained on the summary as its labels. A causal model reads the
prompt and the summary as one sequence, and only the summary (and its closing EOS) counts in the loss.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import DataCollatorForSeq2Seq

from sumlab.data.loading import DialogueExample
from sumlab.errors import SumlabError
from sumlab.models.family import is_causal
from sumlab.text.encoding import causal_prompt_ids, truncate_middle
from sumlab.text.prompts import render_prompt

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
    causal: bool = False,
) -> tuple[list[dict], TruncationCounts]:
    """Token ids for each example, unpadded: ``input_ids``, ``attention_mask``, ``labels``.

    Returns:
        The features, and how many sources and targets were truncated.
    """
    if causal:
        return causal_features(examples, tokenizer, template, max_source_length, max_target_length)
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


def causal_features(
    examples: Sequence[DialogueExample], tokenizer, template: str, max_prompt_length: int, max_summary_length: int
) -> tuple[list[dict], TruncationCounts]:
    """Prompt and summary as one sequence; the labels are -100 over the prompt, so only the summary is learnt.

    The summary ends with the tokenizer's EOS (an instruct model's end of turn), so the model learns to stop.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise SumlabError(
            "the tokenizer has no EOS token, so a causal model could not learn to stop",
            "use a tokenizer with an eos_token (set model.tokenizer)",
        )
    prompts = causal_prompt_ids(tokenizer, template, [example.dialogue for example in examples])
    summaries = tokenizer([example.summary for example in examples], add_special_tokens=False)["input_ids"]
    features = []
    for prompt, summary in zip(prompts, summaries):
        prompt = truncate_middle(prompt, max_prompt_length)
        completion = list(summary[: max_summary_length - 1]) + [eos]
        features.append(
            {
                "input_ids": prompt + completion,
                "attention_mask": [1] * (len(prompt) + len(completion)),
                "labels": [LABEL_PAD] * len(prompt) + completion,
            }
        )
    counts = TruncationCounts(
        sources=sum(len(prompt) > max_prompt_length for prompt in prompts),
        targets=sum(len(summary) + 1 > max_summary_length for summary in summaries),
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
    """Pads each batch to its own longest sequence; label padding is -100 so it never counts in the loss.

    A seq2seq model also gets its decoder inputs from the labels. A causal model's rows are padded on the
    right, whatever the tokenizer's generation side, so that every row's positions start at 0.
    """
    if model is not None and is_causal(model):
        tokenizer = copy.copy(tokenizer)
        tokenizer.padding_side = "right"
        model = None
    return DataCollatorForSeq2Seq(tokenizer, model=model, padding="longest", label_pad_token_id=LABEL_PAD)


def lab_features(examples: Sequence[DialogueExample], tokenizer, template: str, length: int = 512) -> list[dict]:
    """The lab's preprocessing, for benchmarks only: everything padded to 512 and pad tokens left in the labels."""
    prompts = [render_prompt(template, example.dialogue) for example in examples]
    inputs = tokenizer(prompts, padding="max_length", truncation=True, max_length=length)
    labels = tokenizer(
        [example.summary for example in examples], padding="max_length", truncation=True, max_length=length
    )["input_ids"]
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(inputs["input_ids"], inputs["attention_mask"], labels)
    ]
