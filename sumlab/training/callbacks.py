"""Trainer callbacks: the JSON Lines training log and TensorBoard events."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback


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


def tensorboard_callback(directory: Path) -> TensorBoardCallback:
    """TensorBoard events under ``directory`` (written by the main process only)."""
    from torch.utils.tensorboard import SummaryWriter

    class _Callback(TensorBoardCallback):
        def _init_summary_writer(self, args):
            self.tb_writer = SummaryWriter(log_dir=str(directory))

    return _Callback()
