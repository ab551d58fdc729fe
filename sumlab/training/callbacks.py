"""Trainer callbacks: the JSON Lines training log, the progress bar on the terminal and TensorBoard events."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback
from transformers.trainer_utils import has_length

from sumlab.runtime.progress import ProgressBar, describe, progress_bar


class JsonlLogCallback(TrainerCallback):
    """Append each log event (step, loss, learning rate, validation metrics) to a JSON Lines file."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, **logs}
        with self.path.open("a", encoding="utf-8") as handle:  # one write per line: a kill tears at most the last
            handle.write(json.dumps(record) + "\n")


class ProgressDisplayCallback(TrainerCallback):
    """Training on the terminal, when progress is on: the stage, step/total, the latest losses and the time left.

    An evaluation during training shows in the bar's status; one after training gets a bar of its own. Only
    the main process draws; the numbers are those of the log events that go to log.jsonl.
    """

    def __init__(self, description: str):
        self.description = description  # e.g. "train lora"; a running stage of ``sumlab run`` names it instead
        self.bar = ProgressBar(description, 0, show=False)
        self.training = False
        self.losses: dict[str, float] = {}
        self.evaluated = 0  # prediction batches of the evaluation that runs now

    def on_train_begin(self, args, state, control, **kwargs):
        self.training = True
        self.bar = progress_bar(
            describe(self.description),
            state.max_steps,
            unit="steps",
            completed=state.global_step,
            show=_shown_on(state),
        )

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key, name in (("loss", "loss"), ("eval_loss", "eval loss")):
            if isinstance((logs or {}).get(key), (int, float)):
                self.losses[name] = logs[key]
        self.bar.update(status=self._loss_text())

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        total = len(eval_dataloader) if has_length(eval_dataloader) else None
        if not self.training and not self.evaluated:  # an evaluation after training: a bar of its own
            self.losses = {}
            self.bar = progress_bar(
                f"{describe(self.description)} evaluation", total, unit="batches", show=_shown_on(state)
            )
        self.evaluated += 1
        if self.training:
            self.bar.update(status=f"evaluating {self.evaluated}/{total or '?'}")
        else:
            self.bar.update(completed=self.evaluated)

    def on_evaluate(self, args, state, control, **kwargs):
        self.evaluated = 0
        if self.training:
            self.bar.update(status=self._loss_text())
        else:
            self.bar.close()

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False
        self.bar.close()

    def _loss_text(self) -> str:
        return ", ".join(f"{name} {value:.4g}" for name, value in self.losses.items())


def _shown_on(state) -> bool | None:
    """Progress as configured on the main process; never on the others."""
    return None if state.is_world_process_zero else False


def tensorboard_callback(directory: Path) -> TensorBoardCallback:
    """TensorBoard events under ``directory`` (written by the main process only)."""
    from torch.utils.tensorboard import SummaryWriter

    class _Callback(TensorBoardCallback):
        def _init_summary_writer(self, args):
            self.tb_writer = SummaryWriter(log_dir=str(directory))

    return _Callback()
