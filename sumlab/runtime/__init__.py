"""Runtime: the process group and rank-0 writes, atomic file writes, peak memory."""
