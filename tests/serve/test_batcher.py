"""Tests for sumlab.serve.batcher on a fake runner: failure isolation and the drain on shutdown.

The fake runner answers at once (or when a test releases it), so these tests are deterministic:
they wait on events and futures, never on the clock, except for a drain timeout of a few
milliseconds that must run out.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from sumlab.config import GenerationSettings
from sumlab.serve.batcher import Completed, MicroBatcher, ShuttingDown, WorkItem
from sumlab.serve.prometheus import ServerMetrics
from sumlab.serve.registry import Generated, ServedModel

SETTINGS = GenerationSettings(max_new_tokens=4)
POISON = "POISON"


class FakeRunner:
    """Upper-cases each prompt; raises for a call holding a prompt with POISON; can hold a call until released."""

    is_peft = False

    def __init__(self, hold: bool = False):
        self.calls: list[list[str]] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.stop_requested: list[bool] = []
        if not hold:
            self.release.set()

    def generate(self, prompts, settings, adapter_names=None, should_stop=None) -> list[Generated]:
        self.calls.append(list(prompts))
        self.entered.set()
        assert self.release.wait(10), "the test never released the runner"
        self.stop_requested.append(bool(should_stop and should_stop()))
        if any(POISON in prompt for prompt in prompts):
            raise RuntimeError("this prompt breaks the model")
        return [Generated(prompt.upper(), len(prompt), 1) for prompt in prompts]


def served(runner: FakeRunner) -> ServedModel:
    return ServedModel("base", "base", None, runner, None, True, "{dialogue}")


def work(model: ServedModel, prompt: str) -> WorkItem:
    return WorkItem(model, prompt, SETTINGS)


def outcome(future: Future):
    """The future's result, or the type of its exception."""
    try:
        return future.result(timeout=10)
    except Exception as exc:
        return type(exc)


@pytest.fixture()
def metrics() -> ServerMetrics:
    return ServerMetrics()


def test_a_failing_group_is_retried_one_by_one_and_only_the_bad_item_fails(metrics):
    runner = FakeRunner()
    batcher = MicroBatcher(max_batch_size=8, batch_wait_ms=0, max_queue=16, metrics=metrics)
    prompts = [f"dialogue {index}" for index in range(7)]
    prompts[3] += f" {POISON}"
    items = [work(served(runner), prompt) for prompt in prompts]
    batcher.submit(items)  # all seven at once: one batch, one group
    results = [outcome(item.future) for item in items]
    batcher.stop()
    assert results[3] is RuntimeError
    good = [result for index, result in enumerate(results) if index != 3]
    assert all(isinstance(result, Completed) for result in good)
    assert [result.generated.text for result in good] == [prompt.upper() for i, prompt in enumerate(prompts) if i != 3]
    assert [len(call) for call in runner.calls] == [7, 1, 1, 1, 1, 1, 1, 1], "the group, then each item alone"
    assert all(result.batch_size == 1 for result in good)
    assert metrics.value("sumlab_generate_failures_total") == 1
    assert metrics.value("sumlab_summaries_total", model="base") == 6


def test_a_group_that_works_runs_once(metrics):
    runner = FakeRunner()
    batcher = MicroBatcher(max_batch_size=8, batch_wait_ms=0, max_queue=16, metrics=metrics)
    items = [work(served(runner), f"dialogue {index}") for index in range(5)]
    batcher.submit(items)
    assert all(outcome(item.future).batch_size == 5 for item in items)
    batcher.stop()
    assert [len(call) for call in runner.calls] == [5]


def held_batcher(drain_queue: int = 2) -> tuple[MicroBatcher, FakeRunner, WorkItem, list[WorkItem]]:
    """A batcher of batch size 1 whose runner holds the first call: one item running, ``drain_queue`` queued."""
    runner = FakeRunner(hold=True)
    batcher = MicroBatcher(max_batch_size=1, batch_wait_ms=0, max_queue=16)
    running = work(served(runner), "running")
    batcher.submit([running])
    assert runner.entered.wait(10)
    queued = [work(served(runner), f"queued {index}") for index in range(drain_queue)]
    batcher.submit(queued)
    return batcher, runner, running, queued


def test_close_refuses_new_work_and_drains_the_queue_within_the_timeout():
    batcher, runner, running, queued = held_batcher()
    batcher.close(drain_timeout=60)
    with pytest.raises(ShuttingDown):
        batcher.submit([work(served(runner), "too late")])
    runner.release.set()
    results = [outcome(item.future) for item in [running, *queued]]
    assert [result.generated.text for result in results] == ["RUNNING", "QUEUED 0", "QUEUED 1"]
    batcher._thread.join(10)
    assert not batcher._thread.is_alive(), "the worker ends once the queue is drained"
    assert runner.stop_requested == [False, False, False]
    batcher.stop()


def test_work_left_at_the_drain_timeout_fails_with_shutting_down():
    batcher, runner, running, queued = held_batcher()
    batcher.close(drain_timeout=0.01)
    assert [outcome(item.future) for item in queued] == [ShuttingDown, ShuttingDown], "queued work: refused"
    runner.release.set()  # the running call sees its stop signal, and its result may be cut short
    assert outcome(running.future) is ShuttingDown
    assert runner.stop_requested == [True]
    assert runner.calls == [["running"]], "nothing queued was generated"
    batcher.stop()
    assert batcher.depth == 0


def test_stop_fails_what_is_queued_and_start_takes_work_again():
    batcher, runner, running, queued = held_batcher(drain_queue=1)
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    while not batcher.closed:  # stop() has begun: the worker takes no further batch
        stopper.join(0.001)
    runner.release.set()
    stopper.join(10)
    assert isinstance(outcome(running.future), Completed), "the call in progress finishes"
    assert outcome(queued[0].future) is ShuttingDown
    with pytest.raises(ShuttingDown):
        batcher.submit([work(served(runner), "after stop")])
    batcher.start()  # the app starts again (a second lifespan)
    again = work(served(runner), "again")
    batcher.submit([again])
    assert outcome(again.future).generated.text == "AGAIN"
    batcher.stop()
