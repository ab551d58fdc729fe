"""Batched, length-sorted generation, shared by the processes of a job; summaries come back in input order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from sumlab.config import GenerationSettings
from sumlab.generation.sharded import gather_in_input_order
from sumlab.models.family import is_causal
from sumlab.runtime.distributed import distributed_state
from sumlab.runtime.precision import compute_precision
from sumlab.runtime.progress import describe, progress_bar, progress_enabled
from sumlab.text.encoding import prompt_ids
from sumlab.text.prompts import TEMPLATES


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, so that batches pad little.

    Longest first also means an out-of-memory error shows up in the first batch, not the last.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


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
        model: a seq2seq or causal model (plain or PEFT-wrapped), on the device it should run on.
        tokenizer: its tokenizer.
        dialogues: the dialogues, each filled into ``template``.
        settings: decoding settings (defaults: greedy, 200 new tokens, batches of 16).
        progress: show a progress bar (on the main process); by default when progress is on
            (``sumlab.runtime.progress``: the CLI on a terminal).
    """
    settings = settings or GenerationSettings()
    if not dialogues:
        return []  # a tokenizer fails on an empty batch
    encoded = prompt_ids(tokenizer, template, dialogues, settings.max_source_length, is_causal(model))
    batches = length_sorted_batches([len(ids) for ids in encoded], settings.batch_size)
    state = distributed_state()
    mine = batches[state.process_index :: state.num_processes]  # long and short batches for every process
    show = (progress_enabled() if progress is None else progress) and state.is_main_process
    was_training = model.training
    model.eval()
    pairs: list[tuple[int, str]] = []  # (index into dialogues, summary)
    try:
        with (
            _prefix_in_cache(model),
            progress_bar(describe("generate"), sum(map(len, mine)), unit="dialogues", show=show) as bar,
        ):
            for batch in mine:
                texts, _ = generate_from_ids(model, tokenizer, [encoded[i] for i in batch], settings)
                pairs += zip(batch, texts)
                bar.advance(len(batch))
    finally:
        model.train(was_training)
    return gather_in_input_order(pairs, len(dialogues), state.num_processes)


def generate_from_ids(
    model, tokenizer, batch: Sequence[Sequence[int]], settings: GenerationSettings, **extra
) -> tuple[list[str], list[int]]:
    """One ``generate`` call on a batch of prompt ids: the summaries and how many tokens each took.

    A causal model's prompts are padded on the left, so that every row continues right after its prompt,
    and its output is cut after the prompt; a seq2seq model's decoder output starts after the start token.
    """
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
