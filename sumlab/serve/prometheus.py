"""The server's metrics, kept and rendered by ``prometheus_client``.

Each app gets a registry of its own (not the library's global one), so that several apps in one
process (tests) don't clash. A labelled counter has only the series of the labels it has seen
(the cancel stages start at 0), never an unlabelled one. The batching worker thread records into
these metrics while the event loop renders them; ``prometheus_client`` metrics are thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CANCEL_STAGES = ("queued", "generating")


class ServerMetrics:
    """The metrics ``sumlab serve`` exports; the queue gauges read the batcher when scraped."""

    def __init__(self, queue_depth: Callable[[], float] = lambda: 0, queue_capacity: float = 0):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "sumlab_http_requests_total",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "sumlab_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.summaries = Counter(
            "sumlab_summaries_total", "Summaries generated, by model.", ["model"], registry=registry
        )
        self.batch_size = Histogram(
            "sumlab_batch_size", "Dialogues per model.generate call.", buckets=BATCH_SIZE_BUCKETS, registry=registry
        )
        self.generate_seconds = Histogram(
            "sumlab_generate_duration_seconds",
            "Time of one model.generate call.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cancelled = Counter(
            "sumlab_cancelled_total",
            "Dialogues dropped because their clients went away, by stage (queued, generating).",
            ["stage"],
            registry=registry,
        )
        for stage in CANCEL_STAGES:
            self.cancelled.labels(stage)  # shown as 0 before anything is dropped
        self.rejected = Counter(
            "sumlab_queue_rejected_total", "Dialogues refused with 503 because the queue was full.", registry=registry
        )
        self.failed = Counter(
            "sumlab_generate_failures_total",
            "Dialogues whose generation raised, after a failed batch was retried one by one.",
            registry=registry,
        )
        depth = Gauge("sumlab_queue_depth", "Dialogues waiting for a batch.", registry=registry)
        depth.set_function(queue_depth)
        capacity = Gauge("sumlab_queue_capacity", "Most dialogues the queue holds (--max-queue).", registry=registry)
        capacity.set(queue_capacity)

    def value(self, name: str, **labels: str) -> float:
        """The current value of sample ``name`` with ``labels`` (0 when it has none yet)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
