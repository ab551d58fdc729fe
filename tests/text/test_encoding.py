"""Tests for sumlab.text.encoding: prompt ids cut only where asked, the count of cut prompts, the model's limit."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from sumlab.text.encoding import (
    causal_prompt_ids,
    count_over,
    encode_prompts,
    position_limit,
    prompt_ids,
    source_length_limit,
    truncate_middle,
    truncation_warning,
)
from sumlab.text.prompts import TEMPLATES, render_prompt

SENTINEL = int(1e30)  # what a tokenizer without a known limit says


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def dialogues(dialogsum_dir) -> list[str]:
    with (dialogsum_dir / "test.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(36))]
    return list(dict.fromkeys(row["dialogue"] for row in rows))


@pytest.mark.parametrize(
    "model_type, config_positions, tokenizer_limit, expected",
    [
        pytest.param("t5", None, 512, None, id="t5-relative-positions-ignore-the-tokenizer-512"),
        pytest.param("gpt2", 1024, SENTINEL, 1024, id="gpt2-n-positions"),
        pytest.param("bart", 1024, 1024, 1024, id="bart-learned-positions"),
        pytest.param("qwen2", 32768, 131072, 32768, id="config-wins-over-tokenizer"),
        pytest.param("custom", None, 2048, 2048, id="real-tokenizer-limit-when-config-names-none"),
        pytest.param("custom", None, SENTINEL, None, id="tokenizer-sentinel-is-no-limit"),
        pytest.param(None, None, None, None, id="nothing-known"),
    ],
)
def test_position_limit(model_type, config_positions, tokenizer_limit, expected):
    assert position_limit(model_type, config_positions, tokenizer_limit) == expected


@pytest.mark.parametrize(
    "requested, positions, causal, expected",
    [
        pytest.param(None, None, False, None, id="no-request-no-limit-no-cut"),
        pytest.param(384, None, False, 384, id="request-without-model-limit"),
        pytest.param(None, 1024, False, 1024, id="seq2seq-gets-its-positions"),
        pytest.param(None, 1024, True, 824, id="causal-leaves-room-for-the-summary"),
        pytest.param(512, 1024, True, 512, id="request-within-the-limit"),
        pytest.param(5000, 1024, True, 824, id="request-past-the-limit-is-capped"),
        pytest.param(None, 100, True, 1, id="positions-all-taken-by-the-summary"),
    ],
)
def test_source_length_limit(requested, positions, causal, expected):
    assert source_length_limit(requested, positions, causal, max_new_tokens=200) == expected


def test_count_over():
    assert count_over([10, 20, 30, 21], 20) == 2
    assert count_over([10, 10**6], None) == 0
    assert count_over([], 5) == 0


def test_truncation_warning_says_how_many_and_why():
    assert truncation_warning(3, 500, 512, by_model=False) == (
        "3 of 500 prompts were longer than 512 tokens and were cut to 512"
        " (--max-source-length / generation.max_source_length)"
    )
    assert truncation_warning(1, 1, 1016, by_model=True) == (
        "1 of 1 prompt was longer than 1016 tokens and was cut to 1016 (the model's position limit)"
    )


def test_seq2seq_prompts_uncut_without_a_limit(tokenizer, dialogues):
    uncut = encode_prompts(tokenizer, TEMPLATES["lab"], dialogues, None, causal=False)
    expected = [tokenizer(render_prompt(TEMPLATES["lab"], d), verbose=False)["input_ids"] for d in dialogues]
    assert max(map(len, expected)) > 512  # the old default would have cut these
    assert uncut.ids == expected
    assert uncut.full_lengths == [len(ids) for ids in expected]
    assert uncut.cut == 0
    assert prompt_ids(tokenizer, TEMPLATES["lab"], dialogues, None, causal=False) == expected


def test_seq2seq_prompts_cut_as_the_tokenizer_cuts(tokenizer, dialogues):
    limit = 300
    encoded = encode_prompts(tokenizer, TEMPLATES["lab"], dialogues, limit, causal=False)
    prompts = [render_prompt(TEMPLATES["lab"], d) for d in dialogues]
    assert encoded.ids == tokenizer(prompts, truncation=True, max_length=limit)["input_ids"]  # what it always was
    full = tokenizer(prompts, verbose=False)["input_ids"]
    assert encoded.full_lengths == [len(ids) for ids in full]
    assert 0 < encoded.cut == sum(len(ids) > limit for ids in full) < len(dialogues)
    for ids, whole in zip(encoded.ids, full):
        if len(whole) > limit:
            assert len(ids) == limit and ids[-1] == tokenizer.eos_token_id  # the closing EOS survives
        else:
            assert ids == whole


def test_causal_prompts_lose_their_middle_only_when_over(causal_tokenizer, dialogues):
    full = causal_prompt_ids(causal_tokenizer, TEMPLATES["lab"], dialogues)
    limit = sorted(map(len, full))[len(full) // 2]
    encoded = encode_prompts(causal_tokenizer, TEMPLATES["lab"], dialogues, limit, causal=True)
    assert encoded.ids == [truncate_middle(ids, limit) for ids in full]
    assert encoded.cut == sum(len(ids) > limit for ids in full) > 0
    uncut = encode_prompts(causal_tokenizer, TEMPLATES["lab"], dialogues, None, causal=True)
    assert uncut.ids == full and uncut.cut == 0
