"""Training faults: a kill during a checkpoint save, at any moment, and what ``sumlab train --resume`` makes of it.

A checkpoint is written whole into ``checkpoints/.partial/`` and then renamed into place, so a kill leaves no
half-written ``checkpoint-N``; a damaged one (from an older run, a full disk, a copy cut short) is skipped by
``--resume``, which says in one line which one and why, and goes on from the newest complete checkpoint. Every
resumed run here ends with the weights of the uninterrupted run. The run: LoRA on the tiny T5, 12 steps,
checkpoints at 4, 8 and 12 (the last two kept); each case damages the newest one, as a kill while it was written would have.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import Trainer, TrainerState

from sumlab.cli.app import main
from sumlab.config import TrainConfig
from sumlab.training import trainer as training
from sumlab.training.checkpoints import STAGING_DIR, checkpoint_problem, find_resume_checkpoint
from sumlab.training.run_dir import read_log

STEPS, SAVE_EVERY = 12, 4
NEWEST = f"checkpoint-{STEPS}"
CHECKPOINT_LOG = "sumlab.training.checkpoints"


def run_config(tiny_train_config, tiny_model_dir, method: str) -> TrainConfig:
    """``method`` on 32 DialogSum rows without validation: 12 steps of 8, a checkpoint every 4."""
    train = {
        "learning_rate": 1e-2 if method == "lora" else 1e-3,
        "max_steps": STEPS,
        "save_steps": SAVE_EVERY,
        "logging_steps": 2,
        "per_device_train_batch_size": 8,
        "max_source_length": 64,
        "max_target_length": 32,
        "tensorboard": False,
    }
    return tiny_train_config(
        tiny_model_dir, (32, None), {"name": f"faults-{method}", "peft": {"method": method}}, {"train": train}
    )


@pytest.fixture(scope="module")
def finished_run(tiny_train_config, tiny_model_dir, tmp_path_factory):
    """``finished_run(method)``: a finished run with its checkpoints and config file, trained on first use.

    Each case copies it (``killed_copy``) and damages the copy.
    """
    runs = {}

    def get(method: str = "lora") -> dict:
        if method not in runs:
            config = run_config(tiny_train_config, tiny_model_dir, method)
            root = tmp_path_factory.mktemp(f"finished-{method}")
            config_file = root / "config.yaml"
            config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
            result = training.train(config, out_dir=root / "run")
            checkpoints = result.run_dir / "checkpoints"
            assert [checkpoint_problem(checkpoints / f"checkpoint-{step}") for step in (8, 12)] == [None] * 2
            assert not (checkpoints / STAGING_DIR).exists()
            weights = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
            runs[method] = {"config": config, "config_file": config_file, "root": result.run_dir, "weights": weights}
        return runs[method]

    return get


def killed_copy(run: dict, destination: Path) -> Path:
    """A copy of the finished run as a kill while saving the last checkpoint leaves it: no final model yet."""
    root = destination / "run"
    shutil.copytree(run["root"], root)
    shutil.rmtree(root / "model")
    for finished in ("metrics.json", "summary.json"):
        (root / finished).unlink()
    return root


def sumlab_train(*args: object) -> int:
    """``sumlab train ...`` in-process, through main() (errors: one line, exit code 2); its exit code."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["sumlab", "train", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
    return info.value.code


def assert_resumed_to_the_same_weights(root: Path, run: dict) -> None:
    """The resumed run's final weights are the uninterrupted run's, and each logged step appears once."""
    expected, actual = load_file(run["root"] / "model" / run["weights"]), load_file(root / "model" / run["weights"])
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=0, msg=name)
    steps = [record["step"] for record in read_log(root / "log.jsonl") if "loss" in record]
    assert steps == list(range(2, STEPS + 1, 2))
    assert checkpoint_problem(root / "checkpoints" / NEWEST) is None  # saved again, whole
    assert not (root / "checkpoints" / STAGING_DIR).exists()


def resume_through_the_cli(run: dict, root: Path, caplog) -> list[str]:
    """``sumlab train CONFIG --out ROOT --resume`` must finish (exit 0); the warnings it gave about checkpoints."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=CHECKPOINT_LOG):
        assert sumlab_train(run["config_file"], "--out", root, "--resume") == 0
    return [record.getMessage() for record in caplog.records if record.name == CHECKPOINT_LOG]


# ---------------------------------------------------------------- damaged files in the newest checkpoint


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def missing(path: Path) -> None:
    path.unlink()


DAMAGES = {"emptied": emptied, "truncated": truncated, "missing": missing}
# every file the Trainer reads to resume, by method; the reason a skipped checkpoint is given names the file
NEEDED_FILES = {
    "lora": [
        "trainer_state.json",
        "adapter_model.safetensors",
        "adapter_config.json",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
    ],
    "full": ["trainer_state.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"],
}
FILE_CASES = [
    pytest.param(method, name, damage, id=f"{method}-{name}-{damage}")
    for method, names in NEEDED_FILES.items()
    for name in names
    for damage in DAMAGES
    if method == "lora" or damage == "truncated"  # the full model: one damage per file is enough
]


@pytest.mark.parametrize("method, name, damage", FILE_CASES)
def test_resume_skips_a_checkpoint_with_a_damaged_file(method, name, damage, finished_run, tmp_path, caplog):
    run = finished_run(method)
    root = killed_copy(run, tmp_path)
    DAMAGES[damage](root / "checkpoints" / NEWEST / name)
    problem = checkpoint_problem(root / "checkpoints" / NEWEST)
    assert problem is not None and (name in problem or "weights" in problem), problem
    assert find_resume_checkpoint(root / "checkpoints") == (
        root / "checkpoints" / "checkpoint-8",
        [(root / "checkpoints" / NEWEST, problem)],
    )

    warnings = resume_through_the_cli(run, root, caplog)
    assert warnings == [f"resuming from checkpoint-8, skipping the incomplete {NEWEST}: {problem}"]
    assert_resumed_to_the_same_weights(root, run)


def not_json(path: Path) -> None:
    path.write_text("{'global_step': 12", encoding="utf-8")


def without_global_step(path: Path) -> None:
    state = json.loads(path.read_text(encoding="utf-8"))
    del state["global_step"]
    path.write_text(json.dumps(state), encoding="utf-8")


def of_another_step(path: Path) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), "global_step": 11}), encoding="utf-8")


def folder_with_nothing(checkpoint: Path) -> None:
    shutil.rmtree(checkpoint)
    checkpoint.mkdir()


def only_in_the_staging_folder(checkpoint: Path) -> None:
    """A kill before the rename: the checkpoint, half-written, is still in checkpoints/.partial/."""
    staging = checkpoint.parent / STAGING_DIR / checkpoint.name
    staging.parent.mkdir()
    checkpoint.rename(staging)
    (staging / "trainer_state.json").unlink()


OTHER_CASES = {  # damage to checkpoint-12 -> what the skip says (None: not skipped, as it is no checkpoint-N)
    "trainer-state-not-json": (
        lambda checkpoint: not_json(checkpoint / "trainer_state.json"),
        "trainer_state.json is not valid JSON (cut short?)",
    ),
    "trainer-state-without-global-step": (
        lambda checkpoint: without_global_step(checkpoint / "trainer_state.json"),
        "trainer_state.json has no global_step",
    ),
    "trainer-state-of-another-step": (
        lambda checkpoint: of_another_step(checkpoint / "trainer_state.json"),
        "trainer_state.json is at step 11, not 12",
    ),
    "folder-with-nothing": (folder_with_nothing, "empty folder"),
    "stray-staging-folder": (only_in_the_staging_folder, None),
}


@pytest.mark.parametrize("case", OTHER_CASES)
def test_resume_skips_a_damaged_or_unfinished_checkpoint(case, finished_run, tmp_path, caplog):
    run = finished_run("lora")
    damage, says = OTHER_CASES[case]
    root = killed_copy(run, tmp_path)
    damage(root / "checkpoints" / NEWEST)

    warnings = resume_through_the_cli(run, root, caplog)
    assert warnings == ([f"resuming from checkpoint-8, skipping the incomplete {NEWEST}: {says}"] if says else [])
    assert_resumed_to_the_same_weights(root, run)


def test_no_complete_checkpoint_starts_again_from_the_beginning(finished_run, tmp_path, caplog):
    run = finished_run("lora")
    root = killed_copy(run, tmp_path)
    shutil.rmtree(root / "checkpoints" / NEWEST)
    emptied(root / "checkpoints" / "checkpoint-8" / "trainer_state.json")

    warnings = resume_through_the_cli(run, root, caplog)
    assert len(warnings) == 1 and warnings[0].startswith("no complete checkpoint in "), warnings
    assert warnings[0].endswith("(incomplete: checkpoint-8: trainer_state.json is empty): starting from the beginning")
    assert_resumed_to_the_same_weights(root, run)


# ---------------------------------------------------------------- a fault in the middle of a save


class InjectedFault(Exception):
    """Stands for the kill: raised in the middle of saving checkpoint-8."""


def fail_after(method):
    """``method`` as it is, except that at step 8 it raises once it has done its work (its files are written)."""

    def failing(self, *args, **kwargs):
        method(self, *args, **kwargs)
        if self.state.global_step == 8:
            raise InjectedFault(method.__name__)

    return failing


def write_half_and_fail(method):
    """TrainerState.save_to_json that, at step 8, writes half of the file and stops: the CI failure's empty state."""

    def failing(self, json_path):
        method(self, json_path)
        if self.global_step == 8:
            truncated(Path(json_path))
            raise InjectedFault("save_to_json")

    return failing


SAVE_FAULTS = {  # where, in the Trainer's save, the fault hits: after the model, the optimizer, the RNG state, ...
    "after-the-model": (Trainer, "save_model", fail_after),
    "after-the-optimizer": (Trainer, "_save_optimizer_and_scheduler", fail_after),
    "after-the-rng-state": (Trainer, "_save_rng_state", fail_after),
    "while-writing-the-trainer-state": (TrainerState, "save_to_json", write_half_and_fail),
}


@pytest.mark.parametrize("fault", SAVE_FAULTS)
def test_a_save_that_stops_midway_leaves_no_checkpoint_and_resume_finishes(
    fault, finished_run, tmp_path, caplog, monkeypatch
):
    run = finished_run("lora")
    owner, name, wrap = SAVE_FAULTS[fault]
    root = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, wrap(getattr(owner, name)))
        with pytest.raises(InjectedFault):
            training.train(run["config"], out_dir=root)
    checkpoints = root / "checkpoints"
    # nothing that looks like checkpoint-8: what was written of it is still in the staging folder
    assert sorted(path.name for path in checkpoints.glob("checkpoint-*")) == ["checkpoint-4"]
    assert any((checkpoints / STAGING_DIR / "checkpoint-8").iterdir())
    assert find_resume_checkpoint(checkpoints) == (checkpoints / "checkpoint-4", [])

    warnings = resume_through_the_cli(run, root, caplog)
    assert warnings == []  # nothing to skip: the unfinished save never became a checkpoint
    assert_resumed_to_the_same_weights(root, run)


# ---------------------------------------------------------------- refused before anything is written


def test_resume_with_another_runs_config_is_one_line_and_leaves_the_run_alone(finished_run, tmp_path, capsys):
    run = finished_run("lora")
    root = killed_copy(run, tmp_path)
    before = {str(path): path.read_bytes() for path in root.rglob("*") if path.is_file()}
    other = tmp_path / "other.yaml"
    other_config = run["config"].model_dump(mode="json")
    other_config["train"]["learning_rate"] = 5e-3
    other.write_text(yaml.safe_dump(other_config), encoding="utf-8")

    assert sumlab_train(other, "--out", root, "--resume") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: the config differs from the one") and "--overwrite" in err
    assert {str(path): path.read_bytes() for path in root.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize(
    "extra, says",
    [
        pytest.param(["--resume"], "nothing to resume in", id="resume-without-a-run"),
        pytest.param(
            ["--resume", "--overwrite"], "--resume and --overwrite contradict each other", id="resume-and-overwrite"
        ),
    ],
)
def test_resume_refusals_are_one_line_and_write_nothing(extra, says, finished_run, tmp_path, capsys):
    run = finished_run("lora")
    root = tmp_path / "new"
    assert sumlab_train(run["config_file"], "--out", root, *extra) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert says in err
    assert not root.exists()
