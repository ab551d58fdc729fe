"""Tests for sumlab.generation: length-sorted batches within a token budget, batched == one-at-a-time, input order,
truncation only where asked (and said), PEFT models."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch

from sumlab.config import GenerationSettings, PeftSettings
from sumlab.generation.batching import (
    DEFAULT_TOKENS_PER_ROW,
    batch_token_budget,
    generate_from_ids,
    generation_batches,
    generation_kwargs,
    length_sorted_batches,
    model_source_limit,
    summarize,
)
from sumlab.models.peft_methods import add_peft
from sumlab.text.encoding import encode_prompts
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
    assert length_sorted_batches([], 4, max_tokens=100) == []


def padded_tokens(batch: list[int], lengths: list[int]) -> int:
    return len(batch) * max(lengths[index] for index in batch)


@pytest.mark.parametrize("batch_size", [1, 4, 16])
@pytest.mark.parametrize("max_tokens", [1, 300, 2000, 10**6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_token_budget_batches_invariants(batch_size, max_tokens, seed):
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(20, 60), rng.randint(100, 400), rng.randint(900, 1800)]) for _ in range(50)]
    batches = length_sorted_batches(lengths, batch_size, max_tokens)
    flat = [index for batch in batches for index in batch]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    assert [lengths[index] for index in flat] == sorted(lengths, reverse=True)  # longest first, across batches
    for left, right in zip(flat, flat[1:]):  # ties keep input order: the same batches in every process
        if lengths[left] == lengths[right]:
            assert left < right
    for batch, following in zip(batches, [*batches[1:], None]):
        assert 1 <= len(batch) <= batch_size
        assert len(batch) == 1 or padded_tokens(batch, lengths) <= max_tokens  # over budget only alone
        if following is not None:  # a new batch starts only when the next prompt would not fit
            assert len(batch) == batch_size or padded_tokens([*batch, following[0]], lengths) > max_tokens
    assert batches == length_sorted_batches(list(lengths), batch_size, max_tokens)  # deterministic


def test_a_long_dialogue_does_not_drag_short_ones_to_its_width():
    """One 1,700-token dialogue among 15 of 200 tokens, batches of 16: the old way padded all 16 to 1,700."""
    lengths = [200] * 7 + [1700] + [200] * 8
    budget = batch_token_budget(settings(batch_size=16))
    assert budget == 16 * DEFAULT_TOKENS_PER_ROW
    by_count = length_sorted_batches(lengths, 16)
    by_budget = length_sorted_batches(lengths, 16, budget)
    assert by_count == [[7, *range(7), *range(8, 16)]]
    assert by_budget == [[7, 0, 1, 2], [3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15]]  # 4 x 1700 <= 8192 < 5 x 1700
    assert sum(padded_tokens(batch, lengths) for batch in by_count) == 16 * 1700
    assert sum(padded_tokens(batch, lengths) for batch in by_budget) == 4 * 1700 + 12 * 200
    # with a budget the long one does not fit twice in, it goes alone and the short ones keep one batch
    assert length_sorted_batches(lengths, 16, 3000) == [[7], [index for index in range(16) if index != 7]]


def test_the_default_budget_keeps_batches_of_prompts_up_to_512_tokens():
    """Prompts that the old 512-token cut left whole batch exactly as before: batch_size rows each."""
    rng = random.Random(3)
    lengths = [rng.randint(1, 512) for _ in range(100)]
    for batch_size in (1, 8, 16, 32):
        by_count = length_sorted_batches(lengths, batch_size)
        assert generation_batches(lengths, settings(batch_size=batch_size)) == by_count
    assert generation_batches([513, 400, 10], settings(batch_size=2)) == [[0], [1, 2]]  # 2 x 513 > 2 x 512
    assert generation_batches([600, 500, 10], settings(batch_size=2, max_batch_tokens=1200)) == [[0, 1], [2]]


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


def sumlab_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("sumlab")]


def test_batches_by_budget_give_the_summaries_of_batches_by_count(tiny_model, dialogues):
    model, tokenizer = tiny_model
    by_count = summarize(model, tokenizer, dialogues, settings(batch_size=4, max_batch_tokens=10**6))
    assert summarize(model, tokenizer, dialogues, settings(batch_size=4, max_batch_tokens=700)) == by_count


def test_prompts_are_not_cut_by_default(tiny_model, dialogues, caplog):
    """As in the lab: the whole prompt, however long (T5's positions are relative: no model limit either)."""
    model, tokenizer = tiny_model
    long = "\n".join(dialogues[:3])  # about 1,400 tokens: the old default cut it at 512
    full = tokenizer(render_prompt(TEMPLATES["lab"], long), verbose=False)["input_ids"]
    assert len(full) > 1000 and tokenizer.model_max_length == 512  # the tokenizer's 512 is not T5's limit
    assert model_source_limit(model, tokenizer, GenerationSettings()) is None
    assert encode_prompts(tokenizer, TEMPLATES["lab"], [long], None, causal=False).ids == [full]
    with caplog.at_level(logging.WARNING):
        uncut = summarize(model, tokenizer, [long, dialogues[3]], GenerationSettings(max_new_tokens=8))
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]  # nor transformers'
    assert uncut == lab_loop(model, tokenizer, [long, dialogues[3]], max_new_tokens=8)
    assert uncut[0] != summarize(model, tokenizer, [long], settings(max_source_length=512))[0]


def test_cut_prompts_are_counted_in_a_warning(tiny_model, dialogues, caplog):
    model, tokenizer = tiny_model
    prompts = [render_prompt(TEMPLATES["lab"], dialogue) for dialogue in dialogues]
    lengths = [len(ids) for ids in tokenizer(prompts, verbose=False)["input_ids"]]
    limit = 300
    over = sum(length > limit for length in lengths)
    assert 0 < over < len(dialogues)
    with caplog.at_level(logging.WARNING, logger="sumlab.generation.batching"):
        summarize(model, tokenizer, dialogues, settings(max_source_length=limit))
    assert sumlab_warnings(caplog) == [
        f"{over} of {len(dialogues)} prompts were longer than {limit} tokens and were cut to {limit}"
        " (--max-source-length / generation.max_source_length)"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sumlab.generation.batching"):
        summarize(model, tokenizer, dialogues, settings(max_source_length=max(lengths)))
    assert sumlab_warnings(caplog) == []  # nothing cut, nothing said


def test_a_learned_position_model_gets_its_own_limit(tiny_gpt2_dir, dialogues, caplog):
    """GPT-2 has 1,024 learned positions, which hold the prompt and the summary: longer prompts must be cut."""
    from sumlab.config import ModelConfig
    from sumlab.models.loading import load_model, load_tokenizer

    config = ModelConfig(name_or_path=str(tiny_gpt2_dir), dtype="float32")
    model, tokenizer = load_model(config), load_tokenizer(config)
    long = "\n".join(dialogues)
    limit = 1024 - 8
    assert model_source_limit(model, tokenizer, settings()) == limit
    assert model_source_limit(model, tokenizer, settings(max_source_length=100)) == 100
    assert model_source_limit(model, tokenizer, settings(max_source_length=5000)) == limit
    full = encode_prompts(tokenizer, TEMPLATES["lab"], [long], None, causal=True).ids[0]
    assert len(full) > 1024
    with pytest.raises(IndexError):  # what an uncut prompt would do
        generate_from_ids(model, tokenizer, [full], settings())
    with caplog.at_level(logging.WARNING, logger="sumlab.generation.batching"):
        cut = summarize(model, tokenizer, [long, dialogues[0]], settings(max_source_length=None))
    assert sumlab_warnings(caplog) == [
        f"1 of 2 prompts was longer than {limit} tokens and was cut to {limit} (the model's position limit)"
    ]
    assert cut == summarize(model, tokenizer, [long, dialogues[0]], settings(max_source_length=limit))


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
