"""Counters, gauges and histograms rendered in the Prometheus text format (version 0.0.4).

A few dozen lines instead of a dependency: the server needs labelled counters, histograms and
gauges read at scrape time, and nothing else. Every metric is thread-safe, because the batching
worker thread records into them while the event loop renders them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{name}="{_escape(str(value))}"' for name, value in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing count, one per combination of label values."""

    kind = "counter"

    def __init__(
        self, name: str, help_text: str, labelnames: Sequence[str] = (), initial: Sequence[tuple[str, ...]] = ()
    ):
        """``initial``: label values shown as 0 before anything is counted (an unlabelled counter always is)."""
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {tuple(labels): 0.0 for labels in (initial or [()])}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}" for labels, value in items]


class Gauge:
    """A value read from ``read`` at scrape time (e.g. the queue depth)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]):
        self.name, self.help, self.labelnames, self._read = name, help_text, (), read

    def samples(self) -> list[str]:
        return [f"{self.name} {_number(self._read())}"]


class Histogram:
    """Observations counted into cumulative buckets, with their sum and count, per label values."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float], labelnames: Sequence[str] = ()):
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    series[index] += 1
            series[-2] += value
            series[-1] += 1

    def count(self, *labels: str) -> float:
        with self._lock:
            return self._series.get(labels, [0.0])[-1]

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted((labels, list(series)) for labels, series in self._series.items())
        lines = []
        for labels, series in items:
            for bound, count in zip(self.buckets, series):
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {_number(count)}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, labels)} {_number(series[-2])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, labels)} {_number(series[-1])}")
        return lines


class MetricsRegistry:
    """The metrics of one server, rendered together for ``GET /metrics``."""

    def __init__(self):
        self._metrics: list[Counter | Gauge | Histogram] = []

    def add(self, metric):
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines = []
        for metric in self._metrics:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"


class ServerMetrics:
    """The metrics ``sumlab serve`` exports; the queue gauges read the batcher when scraped."""

    def __init__(self, queue_depth: Callable[[], float] = lambda: 0, queue_capacity: float = 0):
        self.registry = MetricsRegistry()
        add = self.registry.add
        self.requests = add(
            Counter("sumlab_http_requests_total", "HTTP requests by endpoint and status code.", ["endpoint", "status"])
        )
        self.request_seconds = add(
            Histogram(
                "sumlab_http_request_duration_seconds", "Time to answer an HTTP request.", LATENCY_BUCKETS, ["endpoint"]
            )
        )
        self.summaries = add(Counter("sumlab_summaries_total", "Summaries generated, by model.", ["model"]))
        self.batch_size = add(Histogram("sumlab_batch_size", "Dialogues per model.generate call.", BATCH_SIZE_BUCKETS))
        self.generate_seconds = add(
            Histogram("sumlab_generate_duration_seconds", "Time of one model.generate call.", LATENCY_BUCKETS)
        )
        self.cancelled = add(
            Counter(
                "sumlab_cancelled_total",
                "Dialogues dropped because their clients went away, by stage (queued, generating).",
                ["stage"],
                initial=[("queued",), ("generating",)],
            )
        )
        self.rejected = add(
            Counter("sumlab_queue_rejected_total", "Dialogues refused with 503 because the queue was full.")
        )
        add(Gauge("sumlab_queue_depth", "Dialogues waiting for a batch.", queue_depth))
        add(Gauge("sumlab_queue_capacity", "Most dialogues the queue holds (--max-queue).", lambda: queue_capacity))

    def render(self) -> str:
        return self.registry.render()
