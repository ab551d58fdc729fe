"""Prompt token ids for both model families, the same for training, generation and serving.

- seq2seq (T5): the filled-in template is the encoder's input, truncated at the end as the tokenizer does.
- causal (Llama, Qwen, GPT-2): the model reads the prompt and writes the summary after it. The prompt goes
  through the tokenizer's chat template when it has one (an instruct model), as the user's turn followed by
  the assistant's cue; otherwise it is the plain filled-in template. A prompt that is too long loses tokens
  from its middle (the dialogue), so the instruction at its start and the cue at its end survive.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def prompt_ids(tokenizer, template: str, dialogues: Sequence[str], max_length: int, causal: bool) -> list[list[int]]:
    """The prompt ids the model is given for each dialogue, at most ``max_length`` tokens each."""
    if causal:
        return [truncate_middle(ids, max_length) for ids in causal_prompt_ids(tokenizer, template, dialogues)]
    prompts = [render_prompt(template, dialogue) for dialogue in dialogues]
    return tokenizer(prompts, truncation=True, max_length=max_length)["input_ids"]
