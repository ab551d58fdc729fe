"""Tests for sumlab.text.features: tokenizing, truncation counts, dynamic padding and -100 label padding."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from sumlab.data.loading import DialogueExample, load_split
from sumlab.text.features import (
    LABEL_PAD,
    dynamic_padding_collator,
    lab_features,
    tokenize_examples,
)
from sumlab.text.prompts import TEMPLATES

EOS, PAD = 1, 0


class WordTokenizer:
    """One token per whitespace-separated word, then EOS: lengths are known exactly."""

    eos_token_id = EOS
    pad_token_id = PAD

    def __call__(self, texts=None, text_target=None):
        batch = texts if texts is not None else text_target
        return {"input_ids": [[3 + len(word) for word in text.split()] + [EOS] for text in batch]}


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def dialogues(dialogsum_dir) -> list[DialogueExample]:
    return load_split(str(dialogsum_dir), "train", limit=12)


def test_truncation_counts_match_hand_made_lengths():
    # token counts (with EOS): sources 9, 10, 11, 30; targets 4, 5, 6, 5  ->  max 10 / 5
    examples = [
        DialogueExample(id=str(i), dialogue=words(source - 1), summary=words(target - 1))
        for i, (source, target) in enumerate([(9, 4), (10, 5), (11, 6), (30, 5)])
    ]
    features, counts = tokenize_examples(
        examples, WordTokenizer(), "{dialogue}", max_source_length=10, max_target_length=5
    )
    assert (counts.sources, counts.targets, counts.examples) == (2, 1, 4)  # a length equal to the limit is kept whole
    assert [len(f["input_ids"]) for f in features] == [9, 10, 10, 10]
    assert [len(f["labels"]) for f in features] == [4, 5, 5, 5]
    assert [sum(f["attention_mask"]) for f in features] == [9, 10, 10, 10]
    for feature in features:
        assert feature["input_ids"][-1] == EOS and feature["labels"][-1] == EOS
        assert feature["input_ids"].count(EOS) == 1  # EOS replaces the last kept token, it isn't added twice
    assert features[3]["input_ids"][:9] == WordTokenizer()([words(29)])["input_ids"][0][:9]  # the head is kept


def test_template_wraps_every_source():
    examples = [DialogueExample(id="a", dialogue="x y", summary="s")]
    plain, _ = tokenize_examples(examples, WordTokenizer(), "{dialogue}", 100, 100)
    wrapped, _ = tokenize_examples(examples, WordTokenizer(), "Summarize: {dialogue} Summary:", 100, 100)
    assert len(wrapped[0]["input_ids"]) == len(plain[0]["input_ids"]) + 2


def test_real_tokenizer_labels_end_with_eos_and_truncation_keeps_it(dialogues, tokenizer):
    template = TEMPLATES["lab"]
    untruncated, none = tokenize_examples(dialogues, tokenizer, template, 10_000, 10_000)
    assert none.sources == none.targets == 0
    for feature in untruncated:
        assert feature["labels"][-1] == tokenizer.eos_token_id
        assert feature["input_ids"][-1] == tokenizer.eos_token_id
        assert len(feature["input_ids"]) == len(feature["attention_mask"])

    short, counts = tokenize_examples(dialogues, tokenizer, template, max_source_length=32, max_target_length=8)
    long_sources = sum(len(f["input_ids"]) > 32 for f in untruncated)
    long_targets = sum(len(f["labels"]) > 8 for f in untruncated)
    assert (counts.sources, counts.targets) == (long_sources, long_targets) and long_sources > 0
    for full, cut in zip(untruncated, short):
        assert len(cut["input_ids"]) == min(len(full["input_ids"]), 32)
        assert len(cut["labels"]) == min(len(full["labels"]), 8)
        assert cut["input_ids"][-1] == tokenizer.eos_token_id and cut["labels"][-1] == tokenizer.eos_token_id
        assert cut["input_ids"][:-1] == full["input_ids"][: len(cut["input_ids"]) - 1]
        assert cut["labels"][:-1] == full["labels"][: len(cut["labels"]) - 1]


def test_collator_pads_to_the_longest_in_batch_and_masks_label_padding(dialogues, tokenizer, model):
    features, _ = tokenize_examples(dialogues, tokenizer, TEMPLATES["lab"], 512, 128)
    collate = dynamic_padding_collator(tokenizer, model)
    widths = set()
    for start in (0, 4, 8):
        batch_features = features[start : start + 4]
        batch = collate([dict(f) for f in batch_features])
        source_lengths = [len(f["input_ids"]) for f in batch_features]
        label_lengths = [len(f["labels"]) for f in batch_features]
        assert batch["input_ids"].shape == (4, max(source_lengths))
        assert batch["labels"].shape == (4, max(label_lengths))
        widths.add(batch["input_ids"].shape[1])
        for row, (feature, source_length, label_length) in enumerate(
            zip(batch_features, source_lengths, label_lengths)
        ):
            assert batch["input_ids"][row, :source_length].tolist() == feature["input_ids"]
            assert (batch["input_ids"][row, source_length:] == tokenizer.pad_token_id).all()
            assert batch["attention_mask"][row].sum().item() == source_length
            assert batch["labels"][row, :label_length].tolist() == feature["labels"]
            assert (batch["labels"][row, label_length:] == LABEL_PAD).all()
        assert (batch["labels"] == LABEL_PAD).sum().item() == sum(max(label_lengths) - n for n in label_lengths)
        # the decoder sees pad where the labels are -100: -100 is never an input id
        assert (batch["decoder_input_ids"] >= 0).all()
        assert batch["decoder_input_ids"][:, 0].eq(model.config.decoder_start_token_id).all()
    assert len(widths) > 1  # each batch has its own width, not one fixed length


def test_masked_padding_does_not_change_the_loss(dialogues, tokenizer, model):
    """Each example's loss is the same alone or padded in a batch: padding is invisible to the loss."""
    features, _ = tokenize_examples(dialogues[:4], tokenizer, TEMPLATES["lab"], 256, 64)
    collate = dynamic_padding_collator(tokenizer, model)
    model.eval()
    with torch.no_grad():
        batch = collate([dict(f) for f in features])
        logits = model(**batch).logits
        per_token = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), batch["labels"], reduction="none", ignore_index=LABEL_PAD
        )
        for row, feature in enumerate(features):
            alone = model(**collate([dict(feature)])).loss
            padded = per_token[row].sum() / len(feature["labels"])
            torch.testing.assert_close(padded, alone, atol=1e-4, rtol=1e-4)


def test_lab_features_pad_everything_to_512_and_keep_pad_in_labels(dialogues, tokenizer):
    features = lab_features(dialogues, tokenizer, TEMPLATES["lab"])
    ours, _ = tokenize_examples(dialogues, tokenizer, TEMPLATES["lab"], 512, 512)
    for lab, mine in zip(features, ours):
        assert len(lab["input_ids"]) == len(lab["attention_mask"]) == len(lab["labels"]) == 512
        assert LABEL_PAD not in lab["labels"]
        assert lab["labels"].count(PAD) == 512 - len(mine["labels"])  # pad ids left in: the loss will count them
        assert lab["labels"][: len(mine["labels"])] == mine["labels"]
        assert sum(lab["attention_mask"]) == len(mine["input_ids"])
