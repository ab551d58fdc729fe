"""Checkpoint rules for single- and multi-process runs: checkpoints written whole (to a staging folder, then
renamed), the newest complete checkpoint to resume from, the number of processes that wrote it, sharded
parameters at evaluation, and gathering shards when the model is saved."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import zipfile
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from sumlab.config import TrainSettings
from sumlab.errors import SumlabError
from sumlab.models.adapters import save_model_dir
from sumlab.runtime.distributed import barrier, run_on_main

log = logging.getLogger(__name__)


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
        stage = json.loads(Path(config_file).read_text(encoding="utf-8-sig")).get("zero_optimization", {}).get("stage")
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


# ---------------------------------------------------------------- complete checkpoints


STAGING_DIR = ".partial"  # under checkpoints/: each checkpoint is written here, then renamed into place whole
TRAINER_STATE = "trainer_state.json"

# What the Trainer reads to resume, by the name a message gives it, with the entries that can hold it: the plain
# layout's file first, then FSDP's and DeepSpeed's (whose global_step* folder holds the model, optimizer and
# scheduler states)
REQUIRED_ENTRIES = {
    TRAINER_STATE: (TRAINER_STATE,),
    "weights (model.safetensors or adapter_model.safetensors)": (
        "model.safetensors",
        "model.safetensors.index.json",
        "adapter_model.safetensors",
        "pytorch_model_fsdp*",
        "global_step*",
    ),
    "optimizer.pt": ("optimizer.pt", "optimizer.bin", "optimizer_*", "global_step*"),
    "scheduler.pt": ("scheduler.pt", "global_step*"),
    "rng_state.pth": ("rng_state.pth", "rng_state_*.pth"),
}
TORCH_SUFFIXES = (".pt", ".pth", ".bin")  # torch.save's zip archives: a cut one has lost its central directory


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why the Trainer could not resume from ``checkpoint`` (None when it is complete).

    Every state the Trainer reads must be there, and every file whole: no empty file, JSON that parses (the
    trainer state with the global step the folder is named after), safetensors whose header parses and whose
    data is all there, torch archives that end with their central directory.
    """
    if not checkpoint.is_dir():
        return "not a folder"
    if not any(checkpoint.iterdir()):
        return "empty folder"
    for what, names in REQUIRED_ENTRIES.items():
        if not any(next(checkpoint.glob(name), None) for name in names):
            return f"no {what}"
    if (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "adapter_config.json").is_file():
        return "no adapter_config.json"  # PEFT reads it to load the adapter
    for path in sorted(checkpoint.rglob("*")):
        problem = _file_problem(path) if path.is_file() else None
        if problem:
            return f"{path.relative_to(checkpoint)} {problem}"
    return _trainer_state_problem(checkpoint) or _rng_state_problem(checkpoint) or _shard_problem(checkpoint)


def _file_problem(path: Path) -> str | None:
    """Why the file at ``path`` is cut short or unreadable, judged by its format (None when it looks whole)."""
    size = path.stat().st_size
    if size == 0:
        return "is empty"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "is not valid JSON (cut short?)"
    elif path.suffix == ".safetensors":
        return _safetensors_problem(path, size)
    elif path.suffix in TORCH_SUFFIXES and not zipfile.is_zipfile(path):
        return "is cut short (no zip central directory)"
    return None


def _safetensors_problem(path: Path, size: int) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensors' bytes up to the last offset."""
    with path.open("rb") as handle:
        prefix = handle.read(8)
        header_length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if not 0 < header_length <= size - 8:
            return "has no complete safetensors header"
        try:
            header = json.loads(handle.read(header_length))
            data_end = max(
                (entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0
            )
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, IndexError, TypeError):
            return "has an unreadable safetensors header"
    if size < 8 + header_length + data_end:
        return f"is cut short ({size} of {8 + header_length + data_end} bytes)"
    return None


def _trainer_state_problem(checkpoint: Path) -> str | None:
    state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    step = state.get("global_step") if isinstance(state, dict) else None
    if not isinstance(step, int):
        return f"{TRAINER_STATE} has no global_step"
    if step != checkpoint_step(checkpoint):
        return f"{TRAINER_STATE} is at step {step}, not {checkpoint_step(checkpoint)}"
    return None


def _rng_state_problem(checkpoint: Path) -> str | None:
    """Each process saves its own RNG state (``rng_state_<rank>.pth``): all of them must be there."""
    world_size = checkpoint_world_size(checkpoint) or 1
    missing = [
        f"rng_state_{rank}.pth" for rank in range(world_size) if not (checkpoint / f"rng_state_{rank}.pth").is_file()
    ]
    return f"no {', '.join(missing)}" if world_size > 1 and missing else None


def _shard_problem(checkpoint: Path) -> str | None:
    """The shards that a sharded model's index names must all be there (each was checked whole above)."""
    for index in checkpoint.glob("*.safetensors.index.json"):
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        missing = sorted({name for name in weight_map.values() if not (checkpoint / name).is_file()})
        if missing:
            return f"{index.name} names missing shards: {', '.join(missing)}"
    return None


def numbered_checkpoints(directory: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``directory``, newest (highest N) first."""
    if not directory.is_dir():
        return []
    found = [path for path in directory.glob("checkpoint-*") if path.name.rsplit("-", 1)[-1].isdigit()]
    return sorted(found, key=checkpoint_step, reverse=True)


def find_resume_checkpoint(directory: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete checkpoint in ``directory`` (None when there is none), and each newer one skipped, with why."""
    skipped = []
    for checkpoint in numbered_checkpoints(directory):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint, skipped
        skipped.append((checkpoint, problem))
    return None, skipped


def last_complete_checkpoint(directory: Path) -> Path | None:
    """The ``checkpoint-N`` with the highest N whose every file the Trainer needs to resume is there and whole."""
    return find_resume_checkpoint(directory)[0]


def resume_checkpoint(directory: Path) -> Path | None:
    """The checkpoint to resume from, saying in one line which newer ones were skipped and why.

    A checkpoint that a kill left half-written is never picked. What a kill left in the staging folder is removed.
    """
    checkpoint, skipped = find_resume_checkpoint(directory)
    shutil.rmtree(directory / STAGING_DIR, ignore_errors=True)
    reasons = "; ".join(f"{path.name}: {problem}" for path, problem in skipped)
    if checkpoint is None:
        found = f" (incomplete: {reasons})" if skipped else ""
        log.warning("no complete checkpoint in %s%s: starting from the beginning", directory, found)
    elif skipped:
        log.warning("resuming from %s, skipping the incomplete %s", checkpoint.name, reasons)
    return checkpoint


def _commit_checkpoint(staging: Path, final: Path) -> None:
    """Rename the whole checkpoint ``staging`` to ``final``, replacing what an earlier, killed run left there."""
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # the staging folder, once empty


class AtomicCheckpointsMixin:
    """A Trainer mixin: each ``checkpoint-N`` appears whole, or not at all.

    The Trainer writes a checkpoint file by file (model, optimizer, scheduler, RNG states, trainer state last);
    a kill in between left a ``checkpoint-N`` that resume picked and crashed on. Here the Trainer's own
    ``_save_checkpoint`` writes into ``checkpoints/.partial/checkpoint-N`` (it asks ``_get_output_dir`` where
    checkpoints go), and the folder is renamed into place once every process has written its files. Rotating
    old checkpoints and recording the best one then happen on the real folder.
    """

    _saving_checkpoint = False

    def _get_output_dir(self, trial) -> str:
        run_dir = super()._get_output_dir(trial)
        return str(Path(run_dir) / STAGING_DIR) if self._saving_checkpoint else run_dir

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging, final = run_dir / STAGING_DIR / name, run_dir / name
        run_on_main(shutil.rmtree, run_dir / STAGING_DIR, ignore_errors=True)  # left by a kill: start clean
        self._saving_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._saving_checkpoint = False
        if self.state.best_model_checkpoint == str(staging):  # this one is the best: record where it will be
            self.state.best_model_checkpoint = str(final)
            if self.args.should_save:
                self.state.save_to_json(str(staging / TRAINER_STATE))
        barrier()  # every process has written its files (its RNG state, its optimizer shard)
        run_on_main(self._commit_and_rotate, staging, final)

    def _commit_and_rotate(self, staging: Path, final: Path) -> None:
        _commit_checkpoint(staging, final)
        rotate_checkpoints(
            output_dir=str(final.parent),
            save_total_limit=self.args.save_total_limit,
            best_model_checkpoint=self.state.best_model_checkpoint,
            use_mtime=True,
        )


def checkpoint_step(checkpoint: Path | None) -> int:
    """The global step of a ``checkpoint-N`` directory (0 for none)."""
    return int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else 0
