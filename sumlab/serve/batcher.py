"""Micro-batching: one worker thread turns concurrent requests into few ``generate`` calls.

Requests put their dialogues on a bounded queue and wait on futures. The worker takes up to
``max_batch_size`` dialogues, waiting at most ``batch_wait_ms`` (counted from the oldest one's
arrival) for more to come, then groups them by network, by adapter where the adapter can't be
mixed, and by decoding settings, and runs one ``generate`` call per group. A single worker also
means the model is never used from two threads at once, so switching adapters is safe.

A dialogue whose client left before its batch began is skipped; a ``generate`` call whose clients
have all left stops at the next token (a torch model's; an engine's call runs to its end, and its
summaries are dropped). Either way the worker goes on with the next batch.

One bad dialogue fails only its own request: when a group's ``generate`` call raises, its dialogues
are run again one by one, and only those that fail alone get the error.

Shutdown drains: ``close(drain_timeout)`` refuses new work at once, lets the worker go on with the
queue, and once the time is up stops the running call at its next token and fails everything left
with ``ShuttingDown`` (the app answers 503).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sumlab.config import GenerationSettings
from sumlab.serve.registry import Generated, ServedModel

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue has no room for a request's dialogues."""


class ShuttingDown(Exception):
    """The server stopped before the dialogue was generated."""


class ClientLeft(Exception):
    """Generation stopped early because every client of the batch had left."""


@dataclass(frozen=True)
class Completed:
    """A generated summary, with when it was ready and how many dialogues shared its ``generate`` call."""

    generated: Generated
    finished: float  # time.perf_counter()
    batch_size: int


@dataclass
class WorkItem:
    """One dialogue to summarize with one model, as its prompt's token ids; its future gets a ``Completed``."""

    model: ServedModel
    prompt_ids: Sequence[int]
    settings: GenerationSettings
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)
    abandoned: bool = False  # set by the request handler when its client disconnects

    def group(self) -> tuple:
        return (*self.model.batch_group(), self.settings.model_dump_json())


class MicroBatcher:
    """The queue and the worker thread that drains it."""

    def __init__(self, max_batch_size: int, batch_wait_ms: float, max_queue: int, metrics=None):
        self.max_batch_size, self.batch_wait = max_batch_size, batch_wait_ms / 1000.0
        self.max_queue, self.metrics = max_queue, metrics
        self._queue: deque[WorkItem] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False  # the worker ends now; whatever is queued fails
        self._closed = False  # no new work; the worker drains the queue
        self._expired = False  # the drain time is up: the running call stops, the rest fails
        self._drain_timer: threading.Timer | None = None

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        """Start the worker, and take work again after a ``stop`` (when the app starts)."""
        with self._condition:
            self._stopping = self._closed = self._expired = False
            self._start_worker()

    def _start_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="sumlab-batcher", daemon=True)
            self._thread.start()

    def close(self, drain_timeout: float) -> None:
        """Refuse new work now; after ``drain_timeout`` seconds, fail what is still queued or running.

        Returns at once; the worker drains the queue meanwhile. A second call changes nothing.
        """
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._condition.notify_all()
            self._drain_timer = threading.Timer(drain_timeout, self._expire)
            self._drain_timer.daemon = True
            self._drain_timer.start()

    def _expire(self) -> None:
        """The drain time is up: the running call stops at its next token; the queued dialogues fail."""
        with self._condition:
            self._expired = True
            left, self._queue = list(self._queue), deque()
            self._condition.notify_all()
        if left:
            log.warning("shutdown: %d queued dialogue(s) not generated within the drain timeout", len(left))
        _fail(left, ShuttingDown)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, then fail whatever is still queued with ShuttingDown."""
        with self._condition:
            self._stopping = self._closed = True
            self._condition.notify_all()
            timer, self._drain_timer = self._drain_timer, None
        if timer is not None:
            timer.cancel()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._condition:
            left, self._queue = list(self._queue), deque()
        _fail(left, ShuttingDown)

    def submit(self, items: Sequence[WorkItem]) -> None:
        """Queue all of ``items`` or none of them.

        Raises:
            QueueFull: when they don't all fit under ``max_queue``.
            ShuttingDown: once the server is shutting down.
        """
        with self._condition:
            if self._closed:
                raise ShuttingDown()
            self._start_worker()
            if len(self._queue) + len(items) > self.max_queue:
                if self.metrics is not None:
                    self.metrics.rejected.inc(len(items))
                raise QueueFull()
            self._queue.extend(items)
            self._condition.notify()

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._run(batch)
            except Exception:  # never let one bad batch end the worker
                log.exception("batch failed")

    def _next_batch(self) -> list[WorkItem] | None:
        """Up to ``max_batch_size`` items, once that many wait or the oldest has waited ``batch_wait``."""
        with self._condition:
            while not self._queue and not (self._stopping or self._closed):
                self._condition.wait()
            if self._stopping or not self._queue:  # stopped, or closed and drained (or expired)
                return None
            deadline = self._queue[0].enqueued + self.batch_wait
            while len(self._queue) < self.max_batch_size and not (self._stopping or self._closed):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            count = min(self.max_batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _run(self, batch: list[WorkItem]) -> None:
        groups: dict[tuple, list[WorkItem]] = {}
        for item in batch:
            groups.setdefault(item.group(), []).append(item)
        for items in groups.values():
            # a group's requests stay cancellable until the group starts, not only until the batch does
            live = [item for item in items if item.future.set_running_or_notify_cancel()]
            if self.metrics is not None and len(live) < len(items):
                self.metrics.cancelled.labels("queued").inc(len(items) - len(live))
            if live:
                self._run_group(live)

    def _run_group(self, items: list[WorkItem]) -> None:
        """One ``generate`` call for ``items``; if it raises, one call per item, so one bad item fails alone."""
        if self._expired:  # shutting down, and the drain time is up
            _fail(items, ShuttingDown)
            return
        try:
            results, seconds = self._generate(items)
        except Exception as exc:
            if len(items) > 1:
                log.warning(
                    "generate failed for %d dialogues (%s): retrying one by one", len(items), type(exc).__name__
                )
                for item in items:
                    self._run_group([item])
                return
            log.exception("generate failed for a dialogue of %s", items[0].model.name)
            if self.metrics is not None:
                self.metrics.failed.inc()
            items[0].future.set_exception(exc)
            return
        if self._expired:  # the drain time ran out during the call, which may have been cut short
            _fail(items, ShuttingDown)
        elif all(item.abandoned for item in items):  # cut short: nobody is waiting for these summaries
            if self.metrics is not None:
                self.metrics.cancelled.labels("generating").inc(len(items))
            _fail(items, ClientLeft)
        else:
            self._deliver(items, results, seconds)

    def _generate(self, items: list[WorkItem]) -> tuple[list[Generated], float]:
        """Run ``items`` (same network, settings, and adapter unless mixable) in one ``generate`` call."""
        first = items[0].model
        runner = first.runner

        def should_stop() -> bool:
            return self._expired or all(item.abandoned for item in items)

        started = time.perf_counter()
        adapter_names = None
        if runner.is_peft and first.mixed:
            adapter_names = [item.model.route for item in items]
        elif runner.is_peft:
            runner.activate(first.route)
        results = runner.generate([item.prompt_ids for item in items], items[0].settings, adapter_names, should_stop)
        return results, time.perf_counter() - started

    def _deliver(self, items: list[WorkItem], results: list[Generated], seconds: float) -> None:
        finished = time.perf_counter()
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(items))
            self.metrics.generate_seconds.observe(seconds)
        for item, generated in zip(items, results):
            if self.metrics is not None:
                self.metrics.summaries.labels(item.model.name).inc()
            item.future.set_result(Completed(generated, finished, len(items)))


def _fail(items: Sequence[WorkItem], error: type[Exception]) -> None:
    """Fail the futures of ``items`` that nobody cancelled (a cancelled one is skipped)."""
    for item in items:
        future = item.future
        if future.done():
            continue
        if future.running() or future.set_running_or_notify_cancel():
            future.set_exception(error())
