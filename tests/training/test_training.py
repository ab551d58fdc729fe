"""Tests for sumlab.training: loss goes down, LoRA leaves the base alone, the run directory, resume, bad configs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from sumlab.config import TrainConfig, load_config
from sumlab.errors import SumlabError
from sumlab.models.parameters import count_parameters
from sumlab.text.features import dynamic_padding_collator
from sumlab.text.prompts import TEMPLATES
from sumlab.training import trainer as training
from sumlab.training.checkpoints import last_complete_checkpoint
from sumlab.training.run_dir import read_log

REPO = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted([*REPO.glob("configs/*.yaml"), *REPO.glob("configs/*.yml")])
SINGLE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


TINY = {
    "name": "tiny",
    "train": {
        "max_source_length": 256,
        "max_target_length": 64,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 16,
        "logging_steps": 5,
    },
    "generation": {"max_new_tokens": 8},
}


@pytest.fixture(scope="module")
def tiny_config(tiny_train_config, tiny_model_dir):
    """Configs for the tiny model on 64 real DialogSum rows and 16 to validate: ``tiny_config(**sections)``.

    Each of ``sections`` updates its section (a dict merges into it); ``data={"validation": None}`` drops validation.
    """
    return lambda **sections: tiny_train_config(tiny_model_dir, (64, 16), TINY, sections)


def train_capturing_model(config: TrainConfig, out_dir: Path, **kwargs):
    """Run ``training.train`` and also return the model object it trained (as built by build_trainable_model)."""
    captured = {}
    build = training.build_trainable_model

    def build_and_keep(cfg):
        captured["model"] = build(cfg)
        return captured["model"]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "build_trainable_model", build_and_keep)
        result = training.train(config, out_dir=out_dir, **kwargs)
    return result, captured["model"]


def validation_loss(model, config: TrainConfig) -> float:
    """The mean token loss on the config's validation rows, batched as Trainer evaluates them (one batch of 16)."""
    tokenizer = AutoTokenizer.from_pretrained(config.model.name_or_path)
    _, eval_set, _ = training.build_datasets(config, tokenizer, TEMPLATES["lab"])
    assert len(eval_set) <= config.train.per_device_eval_batch_size
    batch = dynamic_padding_collator(tokenizer, model)([dict(row) for row in eval_set])
    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``directory`` with its modification time and hash."""
    return {
        str(path.relative_to(directory)): (path.stat().st_mtime_ns, sha256(path))
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def base_state(tiny_model_dir: Path) -> dict[str, torch.Tensor]:
    return AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir).state_dict()


# ---------------------------------------------------------------- one LoRA and one full run, shared


@pytest.fixture(scope="module")
def initial_loss(tiny_config, tiny_model_dir) -> float:
    config = tiny_config()
    return validation_loss(AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir), config)


@pytest.fixture(scope="module")
def lora_run(tiny_config, tiny_model_dir, tmp_path_factory):
    weights_before = sha256(tiny_model_dir / "model.safetensors")
    config = tiny_config(
        peft={"method": "lora", "r": 8, "alpha": 16},
        train={"learning_rate": 1e-2, "max_steps": 30, "eval_steps": 15},
    )
    result, model = train_capturing_model(config, tmp_path_factory.mktemp("lora") / "run")
    return {"config": config, "result": result, "model": model, "weights_before": weights_before}


@pytest.fixture(scope="module")
def full_run(tiny_config, tmp_path_factory):
    config = tiny_config(train={"learning_rate": 3e-3, "max_steps": 30, "eval_steps": 15})
    result, model = train_capturing_model(config, tmp_path_factory.mktemp("full") / "run")
    return {"config": config, "result": result, "model": model}


@pytest.mark.parametrize("run_name", ["lora_run", "full_run"])
def test_the_final_step_is_evaluated_once_and_the_metrics_are_the_kept_weights(run_name, request):
    """The Trainer evaluates at steps 15 and 30 and loads the best checkpoint back: no second evaluation after it."""
    result = request.getfixturevalue(run_name)["result"]
    root, metrics = result.run_dir, result.metrics
    evaluations = [record for record in read_log(root / "log.jsonl") if "eval_loss" in record]
    assert [record["step"] for record in evaluations] == [15, 30]
    state = json.loads((root / "checkpoints" / "checkpoint-30" / "trainer_state.json").read_text(encoding="utf-8"))
    best_step = state["best_global_step"]
    # the best checkpoint is recorded where it ended up, not where it was written before its rename
    assert state["best_model_checkpoint"] == str(root / "checkpoints" / f"checkpoint-{best_step}")
    best = next(record for record in evaluations if record["step"] == best_step)
    saved = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    for key in ("eval_loss", "eval_runtime", "eval_samples_per_second"):
        assert metrics[key] == saved[key] == best[key]


def fake_trainer(log_history: list[dict], *, global_step: int, best: str | None, load_best: bool):
    """What final_evaluation reads of a Trainer after training, and a count of its evaluate() calls."""
    calls = []
    state = SimpleNamespace(log_history=log_history, global_step=global_step, best_model_checkpoint=best)
    trainer = SimpleNamespace(
        state=state,
        args=SimpleNamespace(load_best_model_at_end=load_best),
        evaluate=lambda: calls.append(1) or {"eval_loss": 9.0, "epoch": 2.0},
    )
    return trainer, calls


def test_final_evaluation_reuses_the_evaluation_of_the_weights_in_memory():
    history = [
        {"loss": 3.0, "step": 10},
        {"eval_loss": 2.0, "eval_runtime": 0.1, "epoch": 1.0, "step": 10},
        {"eval_loss": 2.5, "eval_runtime": 0.1, "epoch": 2.0, "step": 20},
    ]
    best = "runs/x/checkpoints/checkpoint-10"
    trainer, calls = fake_trainer(history, global_step=20, best=best, load_best=True)
    assert training.final_evaluation(trainer) == {"eval_loss": 2.0, "eval_runtime": 0.1} and not calls
    trainer, calls = fake_trainer(history, global_step=20, best=best, load_best=False)
    assert training.final_evaluation(trainer) == {"eval_loss": 2.5, "eval_runtime": 0.1} and not calls
    # the last step was not evaluated: evaluate once
    trainer, calls = fake_trainer(history[:2], global_step=20, best=None, load_best=False)
    assert training.final_evaluation(trainer) == {"eval_loss": 9.0, "epoch": 2.0} and calls == [1]


@pytest.mark.parametrize("run_name", ["lora_run", "full_run"])
def test_training_lowers_the_validation_loss(run_name, request, initial_loss):
    run = request.getfixturevalue(run_name)
    final = run["result"].metrics["eval_loss"]
    # our own computation agrees with the Trainer's on the trained model, so the two numbers compare like for like
    assert validation_loss(run["model"], run["config"]) == pytest.approx(final, rel=1e-4)
    assert final < initial_loss - 2.0, (initial_loss, final)  # from about 18.4
    evals = [record["eval_loss"] for record in read_log(run["result"].run_dir / "log.jsonl") if "eval_loss" in record]
    assert len(evals) >= 2 and min(evals) == pytest.approx(final)


def test_lora_leaves_the_base_bit_identical_and_trains_only_adapters(lora_run, tiny_model_dir):
    model = lora_run["model"]
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert any("lora_B" in name for name in trainable)

    assert sha256(tiny_model_dir / "model.safetensors") == lora_run["weights_before"]  # the base on disk
    inside = {
        name.replace(".base_layer.", "."): tensor
        for name, tensor in model.get_base_model().state_dict().items()
        if "lora_" not in name
    }
    original = base_state(tiny_model_dir)
    assert inside.keys() == original.keys()
    changed = [name for name in original if not torch.equal(inside[name], original[name])]
    assert not changed, changed

    adapters = load_file(lora_run["result"].model_dir / "adapter_model.safetensors")
    assert adapters and all("lora_" in name for name in adapters)
    assert any(tensor.abs().sum() > 0 for name, tensor in adapters.items() if "lora_B" in name)  # it learned

    counts = lora_run["result"].summary["parameters"]
    lora_parameters = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    assert counts["trainable"] == lora_parameters == sum(t.numel() for t in adapters.values())
    assert counts["total"] == count_parameters(model).total
    assert counts["percent"] == pytest.approx(100 * counts["trainable"] / counts["total"], abs=1e-3)


def test_full_run_trains_every_parameter(full_run, tiny_model_dir):
    counts = full_run["result"].summary["parameters"]
    assert counts["trainable"] == counts["total"] == count_parameters(full_run["model"]).total
    saved = load_file(full_run["result"].model_dir / "model.safetensors")
    original = base_state(tiny_model_dir)
    assert all(not torch.equal(saved[name], original[name]) for name in saved if name.endswith("q.weight"))


@pytest.mark.parametrize("run_name", ["lora_run", "full_run"])
def test_run_directory_holds_every_artifact(run_name, request, tiny_model_dir):
    run = request.getfixturevalue(run_name)
    root, config = run["result"].run_dir, run["config"]
    is_lora = config.peft.method == "lora"

    saved_config = load_config(TrainConfig, root / "config.yaml")
    assert saved_config.train.learning_rate == config.train.learning_rate
    assert saved_config == training.resolve_config(config)
    assert (root / "prompt.txt").read_text(encoding="utf-8") == TEMPLATES["lab"]

    model_files = {path.name for path in (root / "model").iterdir()}
    expected = {"adapter_model.safetensors", "adapter_config.json"} if is_lora else {"model.safetensors", "config.json"}
    assert expected <= model_files
    assert "tokenizer.json" in model_files and "tokenizer_config.json" in model_files
    assert not any(name.endswith(".bin") for name in model_files)
    assert (
        AutoTokenizer.from_pretrained(root / "model").get_vocab()
        == AutoTokenizer.from_pretrained(tiny_model_dir).get_vocab()
    )

    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["eval_loss"] == run["result"].metrics["eval_loss"] and "train_loss" in metrics

    summary = json.loads((root / "summary.json").read_text())
    assert summary == run["result"].summary
    assert set(summary["parameters"]) == {"trainable", "total", "percent"}
    assert summary["wall_seconds"] > 0 and summary["peak_memory"]["rss_bytes"] > 0
    weights = root / "model" / ("adapter_model.safetensors" if is_lora else "model.safetensors")
    assert summary["saved_bytes"] == weights.stat().st_size
    if is_lora:
        assert summary["saved_bytes"] < summary["full_model_bytes"] / 5
    else:
        assert summary["full_model_bytes"] == 4 * summary["parameters"]["total"] <= summary["saved_bytes"]

    records = read_log(root / "log.jsonl")
    train_records = [r for r in records if "loss" in r]
    assert [r["step"] for r in train_records] == list(range(5, 31, 5))
    assert all(r["learning_rate"] > 0 and r["loss"] > 0 for r in train_records)
    assert [r["step"] for r in records if "eval_loss" in r][:2] == [15, 30]
    assert any(
        path.name.startswith("events.out.tfevents") and path.stat().st_size > 0
        for path in (root / "tensorboard").rglob("*")
    )


# ---------------------------------------------------------------- run directories: overwrite, resume


def refuse_to_build(config):
    raise AssertionError("the model was built before the problem was noticed")


def test_an_existing_run_is_refused_and_left_unchanged(lora_run, monkeypatch):
    root, config = lora_run["result"].run_dir, lora_run["config"]
    before = snapshot(root)
    monkeypatch.setattr(training, "build_trainable_model", refuse_to_build)
    with pytest.raises(SumlabError, match="already exists"):
        training.train(config, out_dir=root)
    other = config.model_copy(update={"train": config.train.model_copy(update={"learning_rate": 5e-3})})
    with pytest.raises(SumlabError, match="config differs"):
        training.train(other, out_dir=root, resume=True)
    with pytest.raises(SumlabError, match="contradict"):
        training.train(config, out_dir=root, resume=True, overwrite=True)
    assert snapshot(root) == before


def test_resume_with_nothing_to_resume_is_refused(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "build_trainable_model", refuse_to_build)
    with pytest.raises(SumlabError, match="nothing to resume"):
        training.train(tiny_config(), out_dir=tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()


def test_overwrite_replaces_the_run(tiny_config, tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "stale.txt").write_text("from an older run")
    config = tiny_config(
        peft={"method": "lora"},
        data={"validation": None},
        train={"max_steps": 2, "max_source_length": 64, "tensorboard": False},
    )
    with pytest.raises(SumlabError, match="already exists"):
        training.train(config, out_dir=root)
    assert [path.name for path in root.iterdir()] == ["stale.txt"]
    result = training.train(config, out_dir=root, overwrite=True)
    assert not (root / "stale.txt").exists()
    assert (root / "model" / "adapter_model.safetensors").is_file() and result.run_dir == root


def test_gradient_checkpointing_with_lora_gives_the_same_training(tiny_config, tmp_path):
    """Checkpointing trades compute for memory and must not change the result (nor cut LoRA's gradients)."""
    adapters, losses = {}, {}
    for checkpointing in (False, True):
        config = tiny_config(
            peft={"method": "lora"},
            data={"validation": None},
            train={
                "learning_rate": 1e-2,
                "max_steps": 3,
                "max_source_length": 64,
                "logging_steps": 1,
                "gradient_checkpointing": checkpointing,
                "tensorboard": False,
            },
        )
        result = training.train(config, out_dir=tmp_path / str(checkpointing))
        adapters[checkpointing] = load_file(result.model_dir / "adapter_model.safetensors")
        losses[checkpointing] = [r["loss"] for r in read_log(result.run_dir / "log.jsonl") if "loss" in r]
    assert any(tensor.abs().sum() > 0 for name, tensor in adapters[True].items() if "lora_B" in name)
    assert losses[True] == pytest.approx(losses[False], rel=1e-5) and len(losses[True]) == 3
    for name, tensor in adapters[False].items():
        # recomputation reorders float sums, and Adam magnifies that for elements with tiny gradients
        torch.testing.assert_close(adapters[True][name], tensor, atol=1e-3, rtol=1e-2)


def checkpointed_config(tiny_config, method: str, learning_rate: float, **train: object) -> TrainConfig:
    """``method`` on the tiny model without validation, for the resume tests; ``train`` sets the steps and saves."""
    train_settings = {"learning_rate": learning_rate, "tensorboard": False, **train}
    return tiny_config(peft={"method": method}, data={"validation": None}, train=train_settings)


def assert_same_final_weights(model_dir: Path, reference_dir: Path, method: str) -> None:
    """The two runs' trained weights (the adapter's for LoRA) are the same, to 1e-6."""
    weights = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    expected, actual = load_file(reference_dir / weights), load_file(model_dir / weights)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("method, learning_rate", [("lora", 1e-2), ("full", 1e-3)])
def test_resume_from_the_last_complete_checkpoint_gives_the_same_final_weights(
    method, learning_rate, tiny_config, tmp_path
):
    """In-process twin of the SIGKILL test below: a crash while checkpoint-12 was being saved, simulated on disk."""
    config = checkpointed_config(
        tiny_config, method, learning_rate, max_steps=12, save_steps=4, logging_steps=2, max_source_length=64
    )
    reference = training.train(config, out_dir=tmp_path / "reference")

    root = tmp_path / "crashed"
    training.train(config, out_dir=root)
    # what a kill during the last save leaves behind: checkpoint-12 without its trainer state, no final model
    (root / "checkpoints" / "checkpoint-12" / "trainer_state.json").unlink()
    shutil.rmtree(root / "model")
    for finished in ("metrics.json", "summary.json"):
        (root / finished).unlink()

    training.train(config, out_dir=root, resume=True)
    assert_same_final_weights(root / "model", reference.model_dir, method)
    # resumed from checkpoint-8 and the log trimmed back to it: each step logged once, with the reference's losses
    logged = [record for record in read_log(root / "log.jsonl") if "loss" in record]
    reference_logged = [record for record in read_log(reference.run_dir / "log.jsonl") if "loss" in record]
    assert (
        [record["step"] for record in logged] == [record["step"] for record in reference_logged] == [2, 4, 6, 8, 10, 12]
    )
    assert [record["loss"] for record in logged] == pytest.approx([record["loss"] for record in reference_logged])


def train_command(config_file: Path, out: Path, *extra: str) -> list[str]:
    """``sumlab train config_file --out out ...`` as a subprocess's command."""
    return [sys.executable, "-m", "sumlab", "train", str(config_file), "--out", str(out), *extra]


def start_cli(config_file: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = train_command(config_file, out, *extra)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=SINGLE_THREAD_ENV)


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
@pytest.mark.timeout(900)  # two runs side by side, then the resumed one
@pytest.mark.parametrize("method, learning_rate", [("lora", 1e-2), ("full", 1e-3)])
def test_resume_after_kill_gives_the_same_final_weights(method, learning_rate, tiny_config, tmp_path):
    config = checkpointed_config(tiny_config, method, learning_rate, max_steps=20, save_steps=5, max_source_length=128)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")

    reference = start_cli(config_file, tmp_path / "reference")
    interrupted = start_cli(config_file, tmp_path / "interrupted")
    # kill once a checkpoint is complete (whichever moment that lands in), as resume judges it: never a flake
    checkpoints = tmp_path / "interrupted" / "checkpoints"
    deadline = time.monotonic() + 240
    while last_complete_checkpoint(checkpoints) is None:
        assert interrupted.poll() is None, interrupted.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
        time.sleep(0.02)
    os.kill(interrupted.pid, signal.SIGKILL)
    interrupted.communicate()
    assert not (tmp_path / "interrupted" / "model").exists(), "training finished before the kill: make the run longer"
    finish(reference)

    finish(start_cli(config_file, tmp_path / "interrupted", "--resume"))
    assert_same_final_weights(tmp_path / "interrupted" / "model", tmp_path / "reference" / "model", method)
    # it resumed rather than starting again: each logged step appears once, the pre-kill ones included
    steps = [record["step"] for record in read_log(tmp_path / "interrupted" / "log.jsonl") if "loss" in record]
    assert steps == list(range(5, 21, 5))


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[path.name for path in CONFIG_FILES])
def test_every_preset_config_loads(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "models" in data:
        pytest.skip("an experiment config (top-level models:), not a training config")
    config = load_config(TrainConfig, path)
    assert isinstance(config, TrainConfig)
    header = "".join(
        line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)[:5] if line.startswith("#")
    )
    assert "sumlab train" in header and path.name in header, "a preset starts with a comment giving its command"


@pytest.fixture()
def config_file(tiny_config, tmp_path) -> Path:
    config = tiny_config(
        peft={"method": "lora"},
        train={"max_steps": 2, "max_source_length": 64, "tensorboard": False},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "override, expected",
    [
        ("peft.method=sparse", "peft.method"),
        ("peft.r=0", "peft.r"),
        ("peft.r=-4", "peft.r"),
        ("train.learning_rate=-0.001", "train.learning_rate"),
        ("train.learnig_rate=0.001", "unknown key 'train.learnig_rate'"),
        ("surprise=1", "unknown key 'surprise'"),
    ],
)
def test_bad_values_are_refused_when_the_config_loads(config_file, override, expected):
    with pytest.raises(SumlabError) as info:
        load_config(TrainConfig, config_file, [override])
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("peft.targets=[foo]", "target modules ['foo'] are not in the model"),
        ("peft.ia3_feedforward=[bar]", "target modules ['bar'] are not in the model"),
        ("data.source=/no/such/dialogsum", "not found"),
        ("train.save_steps=3", "train.save_steps=3 is not a multiple of train.eval_steps=2"),
    ],
)
def test_bad_configs_are_refused_before_training(config_file, override, expected, tmp_path, monkeypatch):
    method = "ia3" if "ia3" in override else "lora"
    config = load_config(TrainConfig, config_file, [override, f"peft.method={method}", "train.eval_steps=2"])

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(training.Seq2SeqTrainer, "train", no_training)
    with pytest.raises(SumlabError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        training.train(config, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # a failed config leaves no run directory to block the next try


def test_qlora_without_cuda_is_refused_before_loading(config_file, tmp_path, monkeypatch):
    config = load_config(TrainConfig, config_file, ["peft.method=qlora"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(training, "build_trainable_model", refuse_to_build)
    monkeypatch.setattr(training, "load_tokenizer", refuse_to_build)
    with pytest.raises(SumlabError, match="CUDA"):
        training.train(config, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_float16_is_refused_for_t5(config_file, tmp_path, monkeypatch):
    config = load_config(TrainConfig, config_file, ["train.precision=float16"])
    monkeypatch.setattr(training, "build_trainable_model", refuse_to_build)
    with pytest.raises(SumlabError, match="float16"):
        training.train(config, out_dir=tmp_path / "run")


# ---------------------------------------------------------------- the command line


def test_cli_train_with_overrides(config_file, tmp_path):
    out = tmp_path / "run"
    command = train_command(config_file, out, "--set", "train.max_steps=3", "--set", "train.logging_steps=1")
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=SINGLE_THREAD_ENV)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert str(out) in completed.stdout
    assert load_config(TrainConfig, out / "config.yaml").train.max_steps == 3
    assert [r["step"] for r in read_log(out / "log.jsonl") if "loss" in r] == [1, 2, 3]
    assert (out / "model" / "adapter_model.safetensors").is_file()


def test_cli_bad_override_is_one_line_and_exit_2(config_file, tmp_path):
    command = train_command(config_file, tmp_path / "run", "--set", "train.nope=1")
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, env=SINGLE_THREAD_ENV)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "train.nope" in lines[0]
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "run").exists()
