"""The run directory: its layout, refusing to overwrite, resuming, and finding complete checkpoints."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sumlab.errors import SumlabError
from sumlab.models.resolve import RUN_MODEL_DIR
from sumlab.runtime.fileio import write_text_atomic

CONFIG_NAME = "config.yaml"


def _under_root(name: str, doc: str | None = None) -> property:
    """A read-only attribute: the path ``name`` under the object's ``root``."""
    return property(lambda self: self.root / name, doc=doc or f"``{name}`` under the root.")


@dataclass(frozen=True)
class RunPaths:
    """Where each artifact of a run lives."""

    root: Path

    config = _under_root(CONFIG_NAME, "The resolved config, as YAML.")
    prompt = _under_root("prompt.txt", "The prompt template the run trained with.")
    model = _under_root(RUN_MODEL_DIR, "The final model (full) or adapter (PEFT), with the tokenizer.")
    checkpoints = _under_root("checkpoints")
    log = _under_root("log.jsonl", "The training log, one JSON object per line.")
    tensorboard = _under_root("tensorboard")
    metrics = _under_root("metrics.json")
    summary = _under_root("summary.json", "Parameters, cost and timing of the run.")


def check_run_dir(root: str | Path, config_yaml: str, *, resume: bool, overwrite: bool) -> RunPaths:
    """Refuse what ``prepare_run_dir`` would refuse, without writing anything.

    An existing run is never replaced without ``overwrite``; resuming needs the same config.
    """
    paths = RunPaths(Path(root))
    if resume and overwrite:
        raise SumlabError("--resume and --overwrite contradict each other", "choose one")
    if resume:
        if not paths.config.is_file():
            raise SumlabError(f"nothing to resume in {paths.root}", "start the run without --resume")
        if paths.config.read_text(encoding="utf-8") != config_yaml:
            raise SumlabError(
                f"the config differs from the one {paths.root} was started with",
                f"resume with the same config (see {paths.config}), or use --overwrite to start again",
            )
    elif paths.root.exists() and any(paths.root.iterdir()) and not overwrite:
        raise SumlabError(f"run directory {paths.root} already exists", "use --resume, --overwrite or another --out")
    return paths


def prepare_run_dir(
    root: str | Path, config_yaml: str, *, resume: bool, overwrite: bool, is_main: bool = True
) -> RunPaths:
    """Create (or reopen, to resume) a run directory and save the resolved config in it.

    Only the main process checks and writes: the others would find the directory it just created.
    """
    if not is_main:
        return RunPaths(Path(root))
    paths = check_run_dir(root, config_yaml, resume=resume, overwrite=overwrite)
    if resume:
        return paths
    if paths.root.exists():
        shutil.rmtree(paths.root)
    paths.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths.config, config_yaml)
    return paths


def read_log(path: Path) -> list[dict]:
    """The JSON Lines training log; a torn last line (from a kill) is skipped."""
    records = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def trim_log(path: Path, last_step: int) -> None:
    """Drop log records after ``last_step`` (written by a run that was killed after its last checkpoint)."""
    if not path.exists():
        return
    kept = [record for record in read_log(path) if record.get("step", 0) <= last_step]
    write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in kept))
