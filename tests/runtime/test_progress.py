"""Tests for the progress display: on a terminal, training and generation show stage, step/total, loss and time
left; in a pipe, a CI log or a library call, nothing (and never the Trainer's log dicts, unless --verbose)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from typer.testing import CliRunner

from sumlab.cli.app import app
from sumlab.config import GenerationSettings, TrainConfig
from sumlab.generation.batching import summarize
from sumlab.runtime import progress
from sumlab.training import trainer as training

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR = "━"  # what rich draws a bar with
DICT_LINE = re.compile(r"\{'loss': ")  # the Trainer's PrinterCallback line: {'loss': '3.919', 'grad_norm': ...}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def quiet_afterwards():
    yield
    progress.reset_progress()


@pytest.fixture
def terminal() -> io.StringIO:
    """Progress on, drawn on a pretend terminal (a string) as wide as a real one."""
    screen = io.StringIO()
    progress.configure_progress(True, console=Console(file=screen, force_terminal=True, width=160))
    return screen


def screen_text(screen: io.StringIO) -> str:
    """What the terminal shows in the end: escape codes dropped, each line's last redraw (after its last \\r)."""
    lines = ANSI.sub("", screen.getvalue()).split("\n")
    return "\n".join(line.rstrip("\r").split("\r")[-1] for line in lines)


@pytest.fixture(scope="module")
def progress_config(tiny_train_config, tiny_model_dir):
    """Full fine-tuning of the tiny T5, 4 steps on 32 DialogSum rows, logged every 2: ``progress_config(**train)``."""

    def build(**train: object) -> TrainConfig:
        sections = {
            "name": "tiny-progress",
            "peft": {"method": "full"},
            "train": {
                "max_source_length": 128,
                "max_target_length": 32,
                "per_device_train_batch_size": 8,
                "per_device_eval_batch_size": 4,
                "max_steps": 4,
                "logging_steps": 2,
                "tensorboard": False,
                **train,
            },
            "generation": {"max_new_tokens": 4},
        }
        return tiny_train_config(tiny_model_dir, (32, 8), sections)

    return build


def test_training_on_a_terminal_shows_the_stage_step_of_total_loss_and_time(terminal, progress_config, tmp_path, capfd):
    config = progress_config(eval_steps=2)
    with progress.stage("train-full", (1, 3)):
        training.train(config, out_dir=tmp_path / "run")
    shown = screen_text(terminal)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    last_loss = [r["loss"] for r in records if "loss" in r][-1]
    last_eval = [r["eval_loss"] for r in records if "eval_loss" in r][-1]
    # the last drawing of the bar (what another line written meanwhile, e.g. a warning, pushed up stays above)
    training_line = [line for line in shown.splitlines() if line.startswith("[1/3] train full " + BAR)][-1]
    assert "4/4 steps" in training_line
    assert f"loss {last_loss:.4g}, eval loss {last_eval:.4g}" in training_line  # the numbers of log.jsonl
    assert re.search(r" in \d:\d\d:\d\d$", training_line)  # finished: how long it took
    assert re.search(r"[0-9]/4 steps .*eta \d:\d\d:\d\d", ANSI.sub("", terminal.getvalue()))  # while it ran
    assert "evaluating 1/2" in terminal.getvalue()  # an evaluation during training shows in the status
    # the last step's evaluation is the final one (train() reuses its metrics): no second one after training
    assert not [line for line in shown.splitlines() if line.startswith("[1/3] train full evaluation")]
    assert [r["step"] for r in records if "eval_loss" in r] == [2, 4]
    captured = capfd.readouterr()
    assert not DICT_LINE.search(captured.out + captured.err)  # the Trainer's dicts went to log.jsonl only


def test_library_calls_are_quiet_unless_asked(progress_config, tiny_model, tmp_path, capfd):
    assert not progress.progress_enabled()
    training.train(progress_config(max_steps=2), out_dir=tmp_path / "run")
    model, tokenizer = tiny_model
    summarize(model, tokenizer, ["#Person1#: Hi.\n#Person2#: Hello."], GenerationSettings(max_new_tokens=4))
    captured = capfd.readouterr()
    assert not DICT_LINE.search(captured.out + captured.err)
    assert BAR not in captured.out + captured.err and "steps" not in captured.err


def test_generation_shows_its_progress_for_a_handful_of_dialogues(terminal, tiny_model, dialogsum_dir):
    model, tokenizer = tiny_model
    dialogues = [json.loads(line)["dialogue"] for line in (dialogsum_dir / "test.jsonl").read_text().splitlines()[:5]]
    settings = GenerationSettings(max_new_tokens=4, batch_size=2)
    expected = summarize(model, tokenizer, dialogues, settings, progress=False)
    assert terminal.getvalue() == ""  # progress=False: no bar, even when progress is on
    with progress.stage("generate-lora", (4, 5)):
        assert summarize(model, tokenizer, dialogues, settings) == expected
    assert re.search(r"^\[4/5\] generate lora " + BAR + r"+ 5/5 dialogues", screen_text(terminal), re.MULTILINE)
    progress.reset_progress()
    quiet = io.StringIO()
    progress.configure_progress(False, console=Console(file=quiet, force_terminal=True))
    summarize(model, tokenizer, dialogues[:2], settings, progress=True)  # asked for: shown although progress is off
    assert "2/2 dialogues" in ANSI.sub("", quiet.getvalue())


# ---------------------------------------------------------------- the command line


def test_sumlab_train_without_a_terminal_prints_no_dicts_and_no_bar_and_verbose_brings_the_dicts_back(
    progress_config, tmp_path
):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(progress_config().model_dump(mode="json")), encoding="utf-8")
    runner = CliRunner(env={"COLUMNS": "200"})  # stdout and stderr are pipes here, as in CI

    plain = runner.invoke(app, ["train", str(config_file), "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert "run directory:" in plain.output
    assert not DICT_LINE.search(plain.output)
    assert BAR not in plain.output and "steps" not in plain.output and "\r" not in plain.output
    assert [
        r["step"] for r in map(json.loads, (tmp_path / "plain" / "log.jsonl").read_text().splitlines()) if "loss" in r
    ] == [2, 4]  # the log still has every record
    assert not progress.progress_enabled() and not progress.trainer_logs_shown()  # the CLI left the library quiet

    verbose = runner.invoke(app, ["-v", "train", str(config_file), "--out", str(tmp_path / "verbose")])
    assert verbose.exit_code == 0, verbose.output
    assert len(DICT_LINE.findall(verbose.stdout)) == 2  # steps 2 and 4, as the Trainer prints them
    assert "'eval_loss'" in verbose.stdout and BAR not in verbose.output
    assert not progress.trainer_logs_shown()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_sumlab_generate_on_a_terminal_shows_its_progress(tiny_model_dir, dialogsum_dir, tmp_path):
    """The real command with stderr on a pseudo-terminal (as a user's shell): the CLI turns progress on."""
    controller, terminal_end = pty.openpty()
    command = [
        sys.executable,
        "-m",
        "sumlab",
        "generate",
        "--data",
        str(dialogsum_dir),
        "--split",
        "test",
        "--limit",
        "3",
        "--model",
        str(tiny_model_dir),
        "--dtype",
        "float32",
        "--max-new-tokens",
        "4",
        "--batch-size",
        "2",
        "--out",
        str(tmp_path / "predictions.jsonl"),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=terminal_end,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "160"},
    )
    os.close(terminal_end)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(controller, chunks))  # a full terminal would block the child
    reader.start()
    stdout, _ = process.communicate(timeout=240)
    reader.join(timeout=10)
    drawn = ANSI.sub("", b"".join(chunks).decode("utf-8", errors="replace"))
    assert process.returncode == 0, drawn[-3000:]
    assert re.search(r"generate " + BAR + r"+ 3/3 dialogues", drawn), drawn[-3000:]
    assert b"wrote 3 predictions" in stdout and BAR.encode() not in stdout  # stdout (a pipe) holds no bar


def _read_all(descriptor: int, chunks: list[bytes]) -> None:
    try:
        while chunk := os.read(descriptor, 4096):
            chunks.append(chunk)
    except OSError:  # the other end closed (Linux raises EIO)
        pass
    finally:
        os.close(descriptor)
