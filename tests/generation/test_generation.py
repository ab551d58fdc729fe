"""Tests for sumlab.generation: length-sorted batches, batched == one-at-a-time, input order, PEFT models."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from sumlab.config import GenerationSettings, PeftSettings
from sumlab.generation.batching import (
    generation_kwargs,
    length_sorted_batches,
    summarize,
)
from sumlab.models.peft_methods import add_peft
from sumlab.text.prompts import TEMPLATES, render_prompt


def read_jsonl(path: Path, limit: int) -> list[dict]:
    """The first ``limit`` rows of a JSON Lines file."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(limit))]


@pytest.fixture(scope="module")
def dialogues(dialogsum_dir) -> list[str]:
    """Twelve distinct real test dialogues, of different lengths."""
    distinct = list(dict.fromkeys(row["dialogue"] for row in read_jsonl(dialogsum_dir / "test.jsonl", limit=36)))
    assert len(distinct) == 12
    return distinct


def settings(**fields) -> GenerationSettings:
    """Short greedy runs; prompts are not truncated (the lab's loop never truncates)."""
    return GenerationSettings(**{"max_new_tokens": 8, "max_source_length": 2048, **fields})


def lab_loop(model, tokenizer, dialogues, max_new_tokens, template=TEMPLATES["lab"]) -> list[str]:
    """The lab's way: one dialogue at a time, tokenize -> generate -> decode."""
    outputs = []
    for dialogue in dialogues:
        input_ids = tokenizer(render_prompt(template, dialogue), return_tensors="pt").input_ids.to(model.device)
        output = model.generate(input_ids, max_new_tokens=max_new_tokens)
        outputs.append(tokenizer.decode(output[0], skip_special_tokens=True).strip())
    return outputs


@torch.no_grad()
def greedy_by_forward(model, tokenizer, dialogue: str, steps: int, template: str) -> str:
    """Greedy decoding with plain forward passes, no cache: what the model computes in training."""
    device = next(model.parameters()).device
    encoded = tokenizer(render_prompt(template, dialogue), return_tensors="pt").to(device)
    decoder_ids = torch.tensor([[model.config.decoder_start_token_id]], device=device)
    for _ in range(steps):
        logits = model(
            input_ids=encoded.input_ids, attention_mask=encoded.attention_mask, decoder_input_ids=decoder_ids
        ).logits
        next_id = logits[0, -1].argmax().item()
        decoder_ids = torch.cat([decoder_ids, torch.tensor([[next_id]], device=device)], dim=1)
        if next_id == tokenizer.eos_token_id:
            break
    return tokenizer.decode(decoder_ids[0], skip_special_tokens=True).strip()


# ---------------------------------------------------------------- length_sorted_batches


@pytest.mark.parametrize("batch_size", [1, 3, 4, 16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_length_sorted_batches_invariants(batch_size, seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 20) for _ in range(rng.randint(1, 40))]  # many ties
    batches = length_sorted_batches(lengths, batch_size)
    flat = [index for batch in batches for index in batch]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    assert all(len(batch) == batch_size for batch in batches[:-1])
    assert 1 <= len(batches[-1]) <= batch_size
    assert len(batches) == -(-len(lengths) // batch_size)
    ordered = [lengths[index] for index in flat]
    assert ordered == sorted(lengths, reverse=True)  # longest first
    for left, right in zip(flat, flat[1:]):  # ties keep input order (stable)
        if lengths[left] == lengths[right]:
            assert left < right


def test_length_sorted_batches_of_nothing():
    assert length_sorted_batches([], 4) == []


def test_generation_kwargs_never_sample():
    class Tok:
        pad_token_id, eos_token_id = 0, 1

    greedy = generation_kwargs(settings(), Tok())
    assert greedy["do_sample"] is False and greedy["num_beams"] == 1
    assert "length_penalty" not in greedy
    beams = generation_kwargs(settings(num_beams=4, length_penalty=0.8, no_repeat_ngram_size=3), Tok())
    assert (beams["num_beams"], beams["length_penalty"], beams["no_repeat_ngram_size"]) == (4, 0.8, 3)
    assert beams["do_sample"] is False


# ---------------------------------------------------------------- summarize


def test_batched_equals_one_at_a_time_and_the_labs_loop(tiny_model, dialogues):
    model, tokenizer = tiny_model
    batched = summarize(model, tokenizer, dialogues, settings(batch_size=4))
    single = summarize(model, tokenizer, dialogues, settings(batch_size=1))
    assert batched == single
    assert len(set(batched)) >= 6  # distinct outputs, so that the order tests below can fail
    assert batched[:4] == lab_loop(model, tokenizer, dialogues[:4], max_new_tokens=8)


def test_outputs_follow_the_input_order(tiny_model, dialogues):
    model, tokenizer = tiny_model
    outputs = summarize(model, tokenizer, dialogues, settings(batch_size=4))
    permutation = random.Random(0).sample(range(len(dialogues)), len(dialogues))
    permuted = summarize(model, tokenizer, [dialogues[i] for i in permutation], settings(batch_size=4))
    assert permuted == [outputs[i] for i in permutation]
    # each output is the one its dialogue gets alone
    assert outputs[7] == summarize(model, tokenizer, [dialogues[7]], settings())[0]


def test_template_and_truncation_apply(tiny_model, dialogues):
    model, tokenizer = tiny_model
    with_t5 = summarize(model, tokenizer, dialogues[:3], settings(), template=TEMPLATES["t5"])
    assert with_t5 == lab_loop(model, tokenizer, dialogues[:3], max_new_tokens=8, template=TEMPLATES["t5"])
    assert with_t5 != summarize(model, tokenizer, dialogues[:3], settings())
    # Prompts are cut at max_source_length tokens: text past the cut cannot change the summary.
    short = settings(max_source_length=24)
    cut = summarize(model, tokenizer, dialogues[:3], short, template="{dialogue}")
    longer = [dialogue + "\n#Person1#: one more line." for dialogue in dialogues[:3]]
    extended = summarize(model, tokenizer, longer, short, template="{dialogue}")
    assert cut == extended


def test_beam_search_runs_and_is_deterministic(tiny_model, dialogues):
    model, tokenizer = tiny_model
    beam = settings(num_beams=3, batch_size=4)
    first = summarize(model, tokenizer, dialogues[:6], beam)
    assert len(first) == 6 and all(isinstance(text, str) for text in first)
    assert first == summarize(model, tokenizer, dialogues[:6], beam)
    assert first == summarize(model, tokenizer, dialogues[:6], settings(num_beams=3, batch_size=1))


def test_no_dialogues_gives_no_summaries(tiny_model):
    model, tokenizer = tiny_model
    assert summarize(model, tokenizer, [], settings()) == []


@pytest.mark.parametrize("training", [True, False])
def test_training_flag_is_restored(tiny_model, dialogues, training):
    model, tokenizer = tiny_model
    model.train(training)
    seen = []
    generate = model.generate

    def spy(*args, **kwargs):
        seen.append(model.training)
        return generate(*args, **kwargs)

    model.generate = spy
    summarize(model, tokenizer, dialogues[:2], settings())
    assert seen == [False]  # generation itself runs in eval mode (no dropout)
    assert all(module.training == training for module in model.modules())


def test_training_flag_is_restored_when_generation_fails(tiny_model, dialogues):
    model, tokenizer = tiny_model
    model.train()

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    model.generate = broken
    with pytest.raises(RuntimeError, match="out of memory"):
        summarize(model, tokenizer, dialogues[:2], settings())
    assert model.training


@pytest.mark.parametrize("method", ["full", "lora", "dora", "ia3", "prefix", "prompt"])
def test_generate_agrees_with_the_forward_pass_for_each_method(tiny_model, dialogues, method):
    """What summarize generates is the greedy decoding of the model as trained, adapters included.

    Prefix tuning used to fail this: transformers 5 dropped PEFT's prefix during generate.
    """
    model, tokenizer = tiny_model
    torch.manual_seed(0)
    wrapped = add_peft(model, PeftSettings(method=method, num_virtual_tokens=4)).eval()
    texts = [dialogue[:200] for dialogue in dialogues[:3]]  # short prompts: the prefix weighs more
    generated = summarize(wrapped, tokenizer, texts, settings(batch_size=3), template="{dialogue}")
    expected = [greedy_by_forward(wrapped, tokenizer, text, steps=8, template="{dialogue}") for text in texts]
    assert generated == expected
    if method in {"prefix", "prompt"}:  # these change the model from the start; the others start as identity
        with wrapped.disable_adapter():
            base = [greedy_by_forward(wrapped, tokenizer, text, steps=8, template="{dialogue}") for text in texts]
        assert generated != base
