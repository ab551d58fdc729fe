"""``sumlab train``: fine-tune (full or PEFT) into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sumlab.cli.options import ConfigArg, SetOpt, console


def train(
    config: ConfigArg,
    overrides: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="run directory (default: runs/<name>)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last complete checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing run directory")] = False,
) -> None:
    """Fine-tune a model (full or PEFT) as the config says, into a run directory."""
    from sumlab.config import TrainConfig, load_config

    train_config = load_config(TrainConfig, config, overrides or [])  # fail fast, before torch is imported
    from sumlab.training.trainer import train as train_model

    result = train_model(train_config, out_dir=out, resume=resume, overwrite=overwrite)
    if result.summary:
        parameters = result.summary["parameters"]
        console.print(
            f"trained {train_config.peft.method}: {parameters['trainable']:,} of {parameters['total']:,} "
            f"parameters ({parameters['percent']:.2f}%) in {result.summary['wall_seconds']:.1f}s"
        )
        console.print(f"run directory: {result.run_dir}")
