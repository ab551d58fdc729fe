"""Generation split across the processes of a job (torchrun / accelerate launch): gathering the summaries.

``summarize`` deals its length-sorted batches out to the processes (batch i to rank i mod N); each process
returns (index, summary) pairs, and here they are gathered and put back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence

from accelerate.utils import gather_object


def gather_in_input_order(pairs: Sequence[tuple[int, str]], count: int, num_processes: int = 1) -> list[str]:
    """Every process's ``(index, summary)`` pairs, gathered when there are several, as a list in input order.

    Every process gets the whole list. Call it on every process of the job (it is a collective).

    Raises:
        RuntimeError: if the summaries don't cover each of the ``count`` dialogues exactly once (a bug).
    """
    gathered = gather_object(list(pairs)) if num_processes > 1 else pairs  # rank by rank
    summaries: list[str | None] = [None] * count
    for index, text in gathered:
        if summaries[index] is not None:
            raise RuntimeError(f"dialogue {index} was summarized twice across processes")
        summaries[index] = text
    missing = [index for index, text in enumerate(summaries) if text is None]
    if missing:
        raise RuntimeError(f"{len(missing)} dialogues were not summarized by any process (first: {missing[0]})")
    return summaries  # type: ignore[return-value]
