"""Prompt token ids for both model families, the same for training, generation and serving.

- seq2seq (T5): the filled-in template is the encoder's input, truncated at the end as the tokenizer does.
- causal (Llama, Qwen, GPT-2): the model reads the prompt and writes the summary after it. The prompt goes
  through the tokenizer's chat template when it has one (an instruct model), as the user's turn followed by
  the assistant's cue; otherwise it is the plain filled-in template. A prompt that is too long loses tokens
  from its middle (the dialogue), so the instruction at its start and the cue at its end survive.

Generation cuts prompts only where it must: at the length the user sets, or where the model's positions end
(``source_length_limit``); as the lab, it never cuts a prompt that a model can read whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sumlab.text.prompts import render_prompt


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def causal_prompt_text(tokenizer, template: str, dialogue: str) -> str:
    """The text a causal model reads before it writes the summary."""
    text = render_prompt(template, dialogue)
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    return text


def causal_prompt_ids(tokenizer, template: str, dialogues: Sequence[str]) -> list[list[int]]:
    """Untruncated prompt ids for a causal model: BOS if the tokenizer adds one, never a closing EOS."""
    texts = [causal_prompt_text(tokenizer, template, dialogue) for dialogue in dialogues]
    # a chat template writes its own special tokens; the tokenizer must not add a second BOS
    encoded = tokenizer(texts, add_special_tokens=not has_chat_template(tokenizer))["input_ids"]
    eos = tokenizer.eos_token_id
    return [ids[:-1] if ids and ids[-1] == eos else list(ids) for ids in encoded]


def truncate_middle(ids: list[int], max_length: int) -> list[int]:
    """``ids`` cut to ``max_length`` by dropping tokens from the middle."""
    if len(ids) <= max_length:
        return list(ids)
    head = max_length // 2
    return list(ids[:head]) + list(ids[len(ids) - (max_length - head) :])


@dataclass(frozen=True)
class EncodedPrompts:
    """Prompt ids, and how long each prompt was before it was cut.

    Attributes:
        ids: the ids the model is given, at most ``max_length`` each.
        full_lengths: each prompt's length in tokens, uncut.
        max_length: the limit they were cut at (None: none).
    """

    ids: list[list[int]]
    full_lengths: list[int]
    max_length: int | None

    @property
    def cut(self) -> int:
        """How many prompts were longer than ``max_length`` and lost tokens."""
        return count_over(self.full_lengths, self.max_length)


def count_over(lengths: Sequence[int], max_length: int | None) -> int:
    """How many of ``lengths`` are over ``max_length`` (none are over None)."""
    return 0 if max_length is None else sum(length > max_length for length in lengths)


def encode_prompts(
    tokenizer, template: str, dialogues: Sequence[str], max_length: int | None, causal: bool
) -> EncodedPrompts:
    """The prompt ids the model is given for each dialogue, cut to ``max_length`` tokens (None: never cut)."""
    if causal:
        full = causal_prompt_ids(tokenizer, template, dialogues)
        ids = full if max_length is None else [truncate_middle(prompt, max_length) for prompt in full]
        return EncodedPrompts(ids, [len(prompt) for prompt in full], max_length)
    prompts = [render_prompt(template, dialogue) for dialogue in dialogues]
    # verbose=False: T5's tokenizer says 512 and warns past it, but T5 reads any length; the limit is ours to set
    full = tokenizer(prompts, verbose=False)["input_ids"]
    ids = [list(prompt) for prompt in full]
    over = [index for index, prompt in enumerate(full) if max_length is not None and len(prompt) > max_length]
    if over:  # the tokenizer's own truncation, which keeps its closing special tokens
        cut = tokenizer([prompts[index] for index in over], truncation=True, max_length=max_length)["input_ids"]
        for index, prompt in zip(over, cut):
            ids[index] = list(prompt)
    return EncodedPrompts(ids, [len(prompt) for prompt in full], max_length)


def prompt_ids(
    tokenizer, template: str, dialogues: Sequence[str], max_length: int | None, causal: bool
) -> list[list[int]]:
    """The prompt ids the model is given for each dialogue, at most ``max_length`` tokens each (None: uncut)."""
    return encode_prompts(tokenizer, template, dialogues, max_length, causal).ids


# A tokenizer that knows no limit says model_max_length = int(1e30) (transformers' VERY_LARGE_INTEGER).
UNKNOWN_TOKENIZER_LIMIT = int(1e29)

# Model types whose positions are relative (T5's bucketed attention bias): any length runs, none is learned.
RELATIVE_POSITION_MODELS = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers"})


def position_limit(model_type: str | None, config_positions: int | None, tokenizer_limit: int | None) -> int | None:
    """How many token positions a model can read, or None when it has no such limit.

    Args:
        model_type: the model config's ``model_type`` (``t5``, ``gpt2``, ...).
        config_positions: its config's ``max_position_embeddings`` (``n_positions`` on GPT-2), if it has one.
        tokenizer_limit: the tokenizer's ``model_max_length``; used only when the config names no limit, the
            model's positions are not relative (T5's tokenizer says 512, but T5 reads any length) and it is a
            real value, not the "unknown" sentinel.
    """
    if config_positions:
        return int(config_positions)
    if model_type in RELATIVE_POSITION_MODELS:
        return None
    if tokenizer_limit and tokenizer_limit < UNKNOWN_TOKENIZER_LIMIT:
        return int(tokenizer_limit)
    return None


def source_length_limit(requested: int | None, positions: int | None, causal: bool, max_new_tokens: int) -> int | None:
    """The most prompt tokens generation gives a model: ``requested`` (None: all of them), within its positions.

    A causal model's positions hold the summary it writes as well, so its prompt gets ``max_new_tokens`` fewer
    (at least one).
    """
    if positions is None:
        return requested
    room = max(1, positions - max_new_tokens) if causal else positions
    return room if requested is None else min(requested, room)


def truncation_warning(cut: int, total: int, max_length: int, by_model: bool) -> str:
    """The line that says how many prompts were cut, and what set the limit."""
    prompts = "prompt" if total == 1 else "prompts"
    was = "was" if cut == 1 else "were"
    reason = "the model's position limit" if by_model else "--max-source-length / generation.max_source_length"
    return f"{cut} of {total} {prompts} {was} longer than {max_length} tokens and {was} cut to {max_length} ({reason})"
