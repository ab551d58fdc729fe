"""Peak memory of this process: RSS on the CPU, allocated memory on CUDA."""

from __future__ import annotations

import resource
import sys

import torch


def peak_rss_bytes() -> int:
    """The process's peak resident set size in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def peak_memory() -> dict[str, int]:
    """Peak RSS, and peak CUDA memory allocated when a GPU was used."""
    result = {"rss_bytes": peak_rss_bytes()}
    if torch.cuda.is_available():
        result["cuda_bytes"] = int(torch.cuda.max_memory_allocated())
    return result
