"""sumlab: fine-tune, evaluate, compare and serve dialogue summarizers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sumlab.errors import SumlabError

if TYPE_CHECKING:
    from sumlab.config import ExperimentConfig, TrainConfig
    from sumlab.training.trainer import TrainResult

__version__ = "0.1.0"

__all__ = ["SumlabError", "__version__", "run", "train"]


def train(config: TrainConfig, **options) -> TrainResult:
    """Fine-tune as ``config`` says (full or PEFT); see ``sumlab.training.trainer.train`` for the options."""
    from sumlab.training.trainer import train as train_model

    return train_model(config, **options)


def run(config: ExperimentConfig, **options) -> tuple:
    """Run the whole experiment; see ``sumlab.experiment.run.run_experiment`` for the options."""
    from sumlab.experiment.run import run_experiment

    return run_experiment(config, **options)
