"""Micro-batching: one worker thread turns concurrent requests into few ``generate`` calls.

Requests put their dialogues on a bounded queue and wait on futures. The worker takes up to
``max_batch_size`` dialogues, waiting at most ``batch_wait_ms`` (counted from the oldest one's
arrival) for more to come, then groups them by network, by adapter where the adapter can't be
mixed, and by decoding settings, and runs one ``generate`` call per group. A single worker also
means the model is never used from two threads at once, so switching adapters is safe.

A dialogue whose client left before its batch began is skipped; a ``generate`` call whose clients
have all left stops at the next token. Either way the worker goes on with the next batch.
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
    """One dialogue to summarize with one model; its future gets a ``Completed``."""

    model: ServedModel
    prompt: str
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
        self._stopping = False

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the worker (once; later calls do nothing)."""
        with self._condition:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="sumlab-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, then fail whatever is still queued with ShuttingDown."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._condition:
            left, self._queue = list(self._queue), deque()
        for item in left:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(ShuttingDown())

    def submit(self, items: Sequence[WorkItem]) -> None:
        """Queue all of ``items`` or none of them.

        Raises:
            QueueFull: when they don't all fit under ``max_queue``.
        """
        self.start()
        with self._condition:
            if self._stopping:
                raise ShuttingDown()
            if len(self._queue) + len(items) > self.max_queue:
                if self.metrics is not None:
                    self.metrics.rejected.inc(amount=len(items))
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
            while not self._queue and not self._stopping:
                self._condition.wait()
            if self._stopping:
                return None
            deadline = self._queue[0].enqueued + self.batch_wait
            while len(self._queue) < self.max_batch_size and not self._stopping:
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
                self.metrics.cancelled.inc("queued", amount=len(items) - len(live))
            if live:
                self._run_group(live)

    def _run_group(self, items: list[WorkItem]) -> None:
        """One ``generate`` call for ``items`` (same network, settings, and adapter unless mixable)."""
        first = items[0].model
        runner = first.runner
        started = time.perf_counter()

        def all_abandoned() -> bool:
            return all(item.abandoned for item in items)

        try:
            adapter_names = None
            if runner.is_peft and first.mixed:
                adapter_names = [item.model.route for item in items]
            elif runner.is_peft:
                runner.activate(first.route)
            results = runner.generate(
                [item.prompt for item in items], items[0].settings, adapter_names, should_stop=all_abandoned
            )
        except Exception as exc:
            log.exception("generate failed for %d dialogue(s) of %s", len(items), first.name)
            for item in items:
                item.future.set_exception(exc)
            return
        finished = time.perf_counter()
        if all_abandoned():  # cut short: nobody is waiting for these summaries
            if self.metrics is not None:
                self.metrics.cancelled.inc("generating", amount=len(items))
            for item in items:
                item.future.set_exception(ClientLeft())
            return
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(items))
            self.metrics.generate_seconds.observe(finished - started)
        for item, generated in zip(items, results):
            if self.metrics is not None:
                self.metrics.summaries.inc(item.model.name)
            item.future.set_result(Completed(generated, finished, len(items)))
