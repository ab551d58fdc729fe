"""Generation split across the processes of a job (torchrun / accelerate launch).

The dialogues are cut into the length-sorted batches that ``summarize`` makes for one process and dealt out
by whole batches; the summaries are gathered back in input order, exactly those of one process.
"""

from __future__ import annotations

from collections.abc import Sequence

from sumlab.config import GenerationSettings
from sumlab.generation.batching import length_sorted_batches, summarize
from sumlab.models.family import is_causal
from sumlab.runtime.distributed import distributed_state
from sumlab.text.encoding import prompt_ids
from sumlab.text.prompts import TEMPLATES


def shard_order(tokenizer, dialogues: Sequence[str], settings: GenerationSettings, template: str,
                rank: int, world_size: int, causal: bool = False) -> list[int]:
    """The indices of the dialogues that process ``rank`` summarizes, in the order it should get them.

    The dialogues are cut into the length-sorted batches that ``summarize`` makes for one process, and the
    batches are dealt out in turn (batch i to rank i mod N): each process gets long and short batches alike,
    and, handed its dialogues in this order, ``summarize`` forms exactly these batches again, with the same
    padding, so the summaries match one process's bit for bit.
    """
    encoded = prompt_ids(tokenizer, template, dialogues, settings.max_source_length, causal)
    lengths = [len(ids) for ids in encoded]
    batches = length_sorted_batches(lengths, settings.batch_size)
    return [index for batch in batches[rank::world_size] for index in batch]


def summarize_distributed(
    model,
    tokenizer,
    dialogues: Sequence[str],
    settings: GenerationSettings | None = None,
    template: str = TEMPLATES["lab"],
    *,
    progress: bool | None = None,
) -> list[str]:
    """``summarize`` with the dialogues split across the job's processes; every rank returns the full list.

    Each process must hold the same model (on its own device) and the same dialogues. The result is in the
    order of ``dialogues``, each summary exactly once, and identical on every rank.

    Raises:
        RuntimeError: if the gathered summaries don't cover each dialogue exactly once (a bug, never expected).
    """
    settings = settings or GenerationSettings()
    state = distributed_state()
    if state.num_processes == 1 or not dialogues:
        return summarize(model, tokenizer, dialogues, settings, template, progress=progress)
    from accelerate.utils import gather_object

    order = shard_order(tokenizer, dialogues, settings, template, state.process_index, state.num_processes,
                        causal=is_causal(model))
    show = (progress if progress is not None else len(dialogues) >= 64) and state.is_main_process
    local = summarize(model, tokenizer, [dialogues[i] for i in order], settings, template, progress=show)
    gathered = gather_object(list(zip(order, local)))  # every rank's (index, summary) pairs, rank by rank
    return _in_input_order(gathered, len(dialogues))


def _in_input_order(pairs: Sequence[tuple[int, str]], count: int) -> list[str]:
    summaries: list[str | None] = [None] * count
    for index, text in pairs:
        if summaries[index] is not None:
            raise RuntimeError(f"dialogue {index} was summarized twice across processes")
        summaries[index] = text
    missing = [index for index, text in enumerate(summaries) if text is None]
    if missing:
        raise RuntimeError(f"{len(missing)} dialogues were not summarized by any process (first: {missing[0]})")
    return summaries  # type: ignore[return-value]
