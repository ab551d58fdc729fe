"""Checkpoint rules for single- and multi-process runs: the newest complete checkpoint, the number of
processes that wrote it, sharded parameters at evaluation, and gathering shards when the model is saved."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sumlab.config import TrainSettings
from sumlab.errors import SumlabError
from sumlab.models.adapters import save_model_dir
from sumlab.runtime.distributed import run_on_main


def checkpoint_world_size(checkpoint: Path) -> int | None:
    """How many processes wrote ``checkpoint``, from the Trainer's RNG files (None when it saved none)."""
    if (checkpoint / "rng_state.pth").is_file():
        return 1
    ranks = [path.stem.rsplit("_", 1)[-1] for path in checkpoint.glob("rng_state_*.pth")]
    indices = [int(rank) for rank in ranks if rank.isdigit()]
    return max(indices) + 1 if indices else None


def check_resume_world_size(checkpoint: Path, num_processes: int) -> None:
    """Refuse to resume ``checkpoint`` with another number of processes than the one that wrote it.

    The data order of the remaining steps (each rank's shard of each global batch), the RNG states and, under
    FSDP or DeepSpeed, the sharded optimizer states all depend on it.
    """
    saved = checkpoint_world_size(checkpoint)
    if saved is not None and saved != num_processes:
        raise SumlabError(
            f"{checkpoint} was written by {saved} process{'es' if saved > 1 else ''}; this run has {num_processes}",
            f"resume with {saved} process{'es' if saved > 1 else ''} (e.g. torchrun --nproc_per_node={saved} -m sumlab "
            "train ... --resume), or start a new run",
        )


def deepspeed_zero_stage() -> int | None:
    """The ZeRO stage that ``accelerate launch`` set up for DeepSpeed (None without DeepSpeed)."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() != "true":
        return None
    stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")
    if stage.isdigit():
        return int(stage)
    config_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if config_file and Path(config_file).is_file():
        stage = json.loads(Path(config_file).read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage")
        return int(stage) if str(stage).isdigit() else None
    return None


def parameter_sharding() -> str | None:
    """How the launcher shards the model's parameters across processes: "FSDP", "DeepSpeed ZeRO-3", or None."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "FSDP"
    if deepspeed_zero_stage() == 3:
        return "DeepSpeed ZeRO-3"
    return None


def check_sharded_evaluation(settings: TrainSettings) -> None:
    """Refuse ``train.eval_rouge`` where parameters are sharded: evaluate after training instead.

    Generating inside evaluation would gather every layer's parameters from all processes at every decoding
    step (``synced_gpus``): tens of times slower than training, and a known source of hangs and errors with
    encoder-decoder models. The evaluation loss needs one forward pass and stays on.
    """
    sharding = parameter_sharding()
    if sharding and settings.eval_rouge:
        raise SumlabError(
            f"train.eval_rouge=true is refused under {sharding}: generating during evaluation would gather the "
            "sharded parameters at every decoding step",
            "set train.eval_rouge=false (the evaluation loss still runs) and score ROUGE after training: sumlab run's "
            "generate stage, or sumlab generate + sumlab evaluate on the run's model/",
        )


def save_trained_model(trainer, tokenizer, out: Path) -> None:
    """Save the trained model (or adapter) and its tokenizer into ``out``, written by rank 0 only.

    With DDP, or one process, rank 0's copy is the whole model. Under FSDP or DeepSpeed each process holds a
    shard: every rank must call this, to take part in gathering them (``Trainer.save_model``); the file is the
    ordinary full model (FSDP's FULL_STATE_DICT, ZeRO-3's zero3_save_16bit_model), loadable without them.
    """
    if not (getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)):
        if trainer.is_world_process_zero():
            save_model_dir(trainer.model, tokenizer, out)
        return
    staging = out.with_name(f".{out.name}.tmp")
    run_on_main(shutil.rmtree, staging, ignore_errors=True)
    trainer.save_model(str(staging))  # a collective: gathers the shards, then rank 0 writes
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)


def last_complete_checkpoint(directory: Path) -> Path | None:
    """The ``checkpoint-N`` with the highest N whose trainer state was written (saving it finished)."""
    if not directory.is_dir():
        return None
    complete = [
        path
        for path in directory.glob("checkpoint-*")
        if path.name.rsplit("-", 1)[-1].isdigit() and (path / "trainer_state.json").is_file()
    ]
    return max(complete, key=lambda path: int(path.name.rsplit("-", 1)[-1]), default=None)


def checkpoint_step(checkpoint: Path | None) -> int:
    """The global step of a ``checkpoint-N`` directory (0 for none)."""
    return int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint else 0
