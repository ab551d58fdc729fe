"""Batched, length-sorted generation, shared by the processes of a job; summaries come back in input order."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from sumlab.config import GenerationSettings
from sumlab.generation.sharded import gather_in_input_order
from sumlab.models.family import is_causal
from sumlab.runtime.distributed import distributed_state
from sumlab.runtime.precision import compute_precision
from sumlab.runtime.progress import describe, progress_bar, progress_enabled
from sumlab.text.encoding import encode_prompts, position_limit, source_length_limit, truncation_warning
from sumlab.text.prompts import TEMPLATES

log = logging.getLogger(__name__)

# Padded prompt tokens per row that a batch may hold by default: max_batch_tokens = batch_size x this.
DEFAULT_TOKENS_PER_ROW = 512


def length_sorted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, so that batches pad little.

    A batch holds at most ``batch_size`` rows and, when ``max_tokens`` is given, at most that many padded tokens
    (its rows times its longest row): a long prompt shares its batch with few others, or goes alone if it is
    over ``max_tokens`` by itself, and short prompts fill whole batches. Longest first also means an
    out-of-memory error shows up in the first batch, not the last. Ties keep the input order.
    """
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        if batches and _has_room(batches[-1], lengths, batch_size, max_tokens):
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def _has_room(batch: list[int], lengths: Sequence[int], batch_size: int, max_tokens: int | None) -> bool:
    """Whether one more (no longer) prompt fits in ``batch``, whose first prompt is its longest."""
    rows = len(batch) + 1
    return rows <= batch_size and (max_tokens is None or rows * lengths[batch[0]] <= max_tokens)


def batch_token_budget(settings: GenerationSettings) -> int:
    """The padded prompt tokens a batch may hold: ``max_batch_tokens``, by default ``batch_size`` x 512.

    The default keeps the batches of prompts up to 512 tokens (the old truncation length) exactly as they
    were, ``batch_size`` rows each, while a longer prompt takes fewer companions, so no batch pads more
    tokens than a full batch of 512-token prompts.
    """
    return settings.max_batch_tokens or settings.batch_size * DEFAULT_TOKENS_PER_ROW


def generation_batches(lengths: Sequence[int], settings: GenerationSettings) -> list[list[int]]:
    """The batches ``summarize`` makes of prompts of ``lengths`` (every process makes the same ones)."""
    return length_sorted_batches(lengths, settings.batch_size, batch_token_budget(settings))


def model_source_limit(model, tokenizer, settings: GenerationSettings) -> int | None:
    """The most prompt tokens generation gives ``model``: ``settings.max_source_length``, within its positions."""
    config = getattr(model, "config", None)
    positions = position_limit(
        getattr(config, "model_type", None),
        getattr(config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    )
    return source_length_limit(settings.max_source_length, positions, is_causal(model), settings.max_new_tokens)


def stop_token_ids(model, tokenizer) -> int | list[int] | None:
    """The tokenizer's EOS, plus (for a causal model) those its generation config names, e.g. an end-of-turn token."""
    if model is None or not is_causal(model):
        return tokenizer.eos_token_id
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    ids = [tokenizer.eos_token_id, *configured]
    return sorted({token for token in ids if token is not None}) or None


def generation_kwargs(settings: GenerationSettings, tokenizer, model=None) -> dict:
    """Keyword arguments for ``model.generate``: greedy or beam search, never sampling."""
    kwargs = {
        "max_new_tokens": settings.max_new_tokens,
        "num_beams": settings.num_beams,
        "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": stop_token_ids(model, tokenizer),
    }
    if settings.num_beams > 1:
        kwargs["length_penalty"] = settings.length_penalty
        kwargs["early_stopping"] = True
    if settings.no_repeat_ngram_size:
        kwargs["no_repeat_ngram_size"] = settings.no_repeat_ngram_size
    return kwargs


@torch.inference_mode()
def summarize(
    model,
    tokenizer,
    dialogues: Sequence[str],
    settings: GenerationSettings | None = None,
    template: str = TEMPLATES["lab"],
    *,
    progress: bool | None = None,
) -> list[str]:
    """Summarize each dialogue with ``model``; the result is in the order of ``dialogues``.

    Under torchrun or accelerate launch the processes share the work: each one generates every N-th of the
    length-sorted batches (the very batches one process makes, with the same padding, so the summaries are
    those of one process bit for bit) and every process returns the whole list. Each process must then hold
    the same model (on its own device) and the same dialogues.

    Args:
        model: a seq2seq or causal model (plain or PEFT-wrapped), on the device it should run on, or an engine
            that generates batches of prompt ids itself (``sumlab.generation.ctranslate2_engine.load_engine``).
        tokenizer: its tokenizer.
        dialogues: the dialogues, each filled into ``template``.
        settings: decoding settings (defaults: greedy, 200 new tokens, batches of up to 16 prompts and
            16 x 512 padded prompt tokens, prompts cut only where the model's positions end). When prompts
            are cut, a warning says how many.
        progress: show a progress bar (on the main process); by default when progress is on
            (``sumlab.runtime.progress``: the CLI on a terminal).
    """
    settings = settings or GenerationSettings()
    if not dialogues:
        return []  # a tokenizer fails on an empty batch
    max_length = model_source_limit(model, tokenizer, settings)
    prompts = encode_prompts(tokenizer, template, dialogues, max_length, is_causal(model))
    encoded = prompts.ids
    batches = generation_batches([len(ids) for ids in encoded], settings)
    state = distributed_state()
    if prompts.cut and state.is_main_process:
        by_model = max_length != settings.max_source_length
        log.warning(truncation_warning(prompts.cut, len(dialogues), max_length, by_model))
    mine = batches[state.process_index :: state.num_processes]  # long and short batches for every process
    show = (progress_enabled() if progress is None else progress) and state.is_main_process
    pairs: list[tuple[int, str]] = []  # (index into dialogues, summary)
    with (
        _generation_mode(model),
        progress_bar(describe("generate"), sum(map(len, mine)), unit="dialogues", show=show) as bar,
    ):
        for batch, (texts, _) in zip(
            mine, batch_results(model, tokenizer, [[encoded[i] for i in b] for b in mine], settings)
        ):
            pairs += zip(batch, texts)
            bar.advance(len(batch))
    return gather_in_input_order(pairs, len(dialogues), state.num_processes)


def batch_results(
    model, tokenizer, batches: Sequence[Sequence[Sequence[int]]], settings: GenerationSettings
) -> Iterator[tuple[list[str], list[int]]]:
    """``generate_from_ids`` of each batch of prompt ids, in order.

    An engine has every batch queued before the first result is awaited, so that its workers never wait for
    each other between batches; a torch model generates one batch at a time.
    """
    if is_engine(model):
        pending = [model.submit(tokenizer, batch, settings) for batch in batches]
        yield from (batch.result() for batch in pending)
    else:
        for batch in batches:
            yield generate_from_ids(model, tokenizer, batch, settings)


def generate_from_ids(
    model, tokenizer, batch: Sequence[Sequence[int]], settings: GenerationSettings, **extra
) -> tuple[list[str], list[int]]:
    """One ``generate`` call on a batch of prompt ids: the summaries and how many tokens each took.

    A causal model's prompts are padded on the left, so that every row continues right after its prompt,
    and its output is cut after the prompt; a seq2seq model's decoder output starts after the start token.
    An engine (``CTranslate2Engine``) generates the batch itself, with the same settings.
    """
    if is_engine(model):
        return model.generate_from_ids(tokenizer, batch, settings, **extra)
    causal = is_causal(model)
    device = next(model.parameters()).device
    features = tokenizer.pad(
        {"input_ids": [list(ids) for ids in batch]}, return_tensors="pt", padding_side="left" if causal else "right"
    ).to(device)
    with compute_precision(model, settings.precision):
        output = model.generate(**features, **generation_kwargs(settings, tokenizer, model), **extra)
    generated = output[:, features["input_ids"].shape[1] :] if causal else output[:, 1:]
    texts = [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
    if tokenizer.pad_token_id is None:
        return texts, [generated.shape[1]] * len(texts)
    return texts, (generated != tokenizer.pad_token_id).sum(dim=1).tolist()


def is_engine(model) -> bool:
    """True for a generation engine (``sumlab.generation.ctranslate2_engine.CTranslate2Engine``), not a torch model."""
    return not isinstance(model, torch.nn.Module)


@contextmanager
def _generation_mode(model) -> Iterator[None]:
    """A torch model in eval mode (with its prefix in the cache) for the block, then as it was; an engine as is."""
    if is_engine(model):
        yield
        return
    was_training = model.training
    model.eval()
    try:
        with _prefix_in_cache(model):
            yield
    finally:
        model.train(was_training)


@contextmanager
def _prefix_in_cache(model) -> Iterator[None]:
    """Make ``generate`` of a prefix-tuned PEFT model use its prefix, as its forward pass does.

    PEFT (0.21) hands the prefix to the base model as ``past_key_values`` in the first decoding step,
    but transformers 5's generate also passes the renamed ``cache`` argument, which wins: the prefix
    is silently dropped and the model generates like the untuned base. Moving the prefix into
    ``cache`` fixes that; for any other model this does nothing.
    """
    config = getattr(model, "active_peft_config", None)
    if getattr(config, "peft_type", None) != "PREFIX_TUNING":  # peft.PeftType is a str enum
        yield
        return
    prepare = model.prepare_inputs_for_generation

    def prepare_with_prefix(*args, **kwargs):
        inputs = prepare(*args, **kwargs)
        prefix = inputs.get("past_key_values")
        first_step = kwargs.get("is_first_iteration")
        if first_step and "cache" in inputs and prefix is not None and prefix is not inputs["cache"]:
            inputs["cache"] = inputs.pop("past_key_values")
        return inputs

    model.prepare_inputs_for_generation = prepare_with_prefix  # PeftModel.generate looks it up on the instance
    try:
        yield
    finally:
        del model.prepare_inputs_for_generation
