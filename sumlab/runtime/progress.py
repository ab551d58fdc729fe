"""Progress on the terminal for long commands: the stage, the step out of its total, the loss and the time left.

Off unless asked, so that a library call (a notebook, the tests) prints nothing; the CLI turns it on when stderr
is a terminal, so that CI logs and pipes hold no bars. The Trainer's log dicts always go to the run's log.jsonl;
``trainer_logs=True`` (the CLI's ``--verbose``) also prints them, as the Trainer does by default.

    configure_progress(True)                  # e.g. in a notebook
    with progress_bar("generate", 40, unit="dialogues") as bar:
        ...; bar.advance(8)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


@dataclass
class _Settings:
    enabled: bool = False
    trainer_logs: bool = False
    console: Console | None = None  # None: a console on stderr, made when a bar starts
    stage: str | None = None  # the label of the stage that runs now, e.g. "[2/5] train full"


_settings = _Settings()


def configure_progress(enabled: bool, *, trainer_logs: bool = False, console: Console | None = None) -> None:
    """Turn progress bars on or off, and the Trainer's log dicts on the screen (``--verbose``).

    Args:
        enabled: show progress bars (the CLI: when stderr is a terminal).
        trainer_logs: also print the Trainer's log dicts (``{'loss': ...}``) as it logs them.
        console: where the bars go (default: stderr); tests pass a ``Console(force_terminal=True)``.
    """
    _settings.enabled, _settings.trainer_logs, _settings.console = enabled, trainer_logs, console


def reset_progress() -> None:
    """Back to the library default: no bars, no log dicts."""
    configure_progress(False)
    _settings.stage = None


def progress_enabled() -> bool:
    """Whether progress bars are shown (off unless the CLI, on a terminal, or ``configure_progress`` turned them on)."""
    return _settings.enabled


def trainer_logs_shown() -> bool:
    """Whether the Trainer's log dicts are printed too (``--verbose``); they are in log.jsonl either way."""
    return _settings.trainer_logs


@contextmanager
def stage(name: str, place: tuple[int, int] | None = None) -> Iterator[None]:
    """Name the bars shown inside this block after the stage: ``[2/5] train full`` for ``train-full``, place (2, 5)."""
    label = name.replace("-", " ", 1)
    previous, _settings.stage = _settings.stage, f"[{place[0]}/{place[1]}] {label}" if place else label
    try:
        yield
    finally:
        _settings.stage = previous


def describe(default: str) -> str:
    """The label for a bar: the running stage's, else ``default`` (e.g. "train lora", "generate")."""
    return _settings.stage or default


class ProgressBar:
    """One task on the terminal: the label, a bar, done/total, a status (e.g. the loss), time spent and left.

    A bar that is not shown does nothing, so callers never branch on whether progress is on.
    """

    def __init__(self, description: str, total: int | None, *, unit: str = "", completed: int = 0, show: bool = True):
        self._progress = _new_progress() if show else None
        if self._progress is not None:
            self._task = self._progress.add_task(description, total=total, completed=completed, unit=unit, status="")
            self._progress.start()

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=amount, refresh=True)

    def update(self, *, completed: int | None = None, status: str | None = None) -> None:
        """Move the bar to ``completed`` and/or set the text shown after the count."""
        if self._progress is None:
            return
        fields = {} if status is None else {"status": status}
        # redrawn now, not at the next tick: a step or a batch is rarely so short that this costs anything
        self._progress.update(self._task, completed=completed, refresh=True, **fields)

    def close(self) -> None:
        """Draw the final state and leave it on the screen (idempotent)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def progress_bar(
    description: str, total: int | None, *, unit: str = "", completed: int = 0, show: bool | None = None
) -> ProgressBar:
    """A bar for ``total`` units of work (None: unknown), shown when progress is on (``show`` overrides it)."""
    return ProgressBar(
        description, total, unit=unit, completed=completed, show=progress_enabled() if show is None else show
    )


class _TimeColumn(ProgressColumn):
    """The time left while the task runs ("eta 0:01:10"), the time it took once it is done ("in 0:02:04")."""

    def __init__(self):
        super().__init__()
        self._elapsed, self._remaining = TimeElapsedColumn(), TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("in ") + self._elapsed.render(task)
        return Text("eta ") + self._remaining.render(task)


def _new_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TextColumn("{task.fields[status]}"),
        _TimeColumn(),
        console=_settings.console or Console(stderr=True),
        refresh_per_second=4,
    )
