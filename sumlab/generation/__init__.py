"""Generation: batched, length-sorted summaries (``summarize``), also split across the processes of a job."""

from sumlab.generation.batching import summarize

__all__ = ["summarize"]
