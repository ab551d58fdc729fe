"""Tests for the sumlab command line.

Working commands run in-process with typer's CliRunner (fast). Error handling lives in
``sumlab.cli.main()`` (SumlabError -> one line on stderr, exit code 2), which CliRunner bypasses, so
every error case runs through ``main()`` in-process, and a few of them (plus ``--debug``) also run as
the real ``python -m sumlab``. Those subprocesses start together, once per module: each one spends
seconds importing torch and transformers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from sumlab.cli.app import app, main
from sumlab.config import EvalSettings, GenerationSettings
from sumlab.errors import SumlabError
from sumlab.evaluation.predictions import read_predictions
from sumlab.evaluation.rouge import ROUGE_KEYS
from sumlab.evaluation.scoring import score_models, scores_to_json
from sumlab.generation.batching import summarize

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
LAB_CSV = SHARED_DATA / "seed" / "dialogue-summary-training-results.csv"
LAB_MODELS = ["original_model_summaries", "instruct_model_summaries", "peft_model_summaries"]
DIALOGUE = "#Person1#: Could you help me with my homework?\n#Person2#: Sure, what is it about?\n#Person1#: Maths."
FLAN_T5_SMALL_PARAMETERS = 76_961_152
LORA_R8_SMALL = 48 * 8 * (512 + 384)  # q and v of 8 encoder + 16 decoder attentions, each 512 -> 384


def read_jsonl(path: Path, limit: int) -> list[dict]:
    """The first ``limit`` rows of a JSON Lines file."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(limit))]


def invoke(*args: str, input: str | None = None):
    """Run the app in-process; a SumlabError stays in ``result.exception`` (main() is not involved)."""
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, [str(arg) for arg in args], input=input)


def ok(*args: str, input: str | None = None):
    result = invoke(*args, input=input)
    assert result.exit_code == 0, f"{result.exception!r}\n{result.output}"
    return result


def command_paths() -> list[list[str]]:
    """Every command and group of the app, e.g. [], ["generate"], ["data"], ["data", "audit"]."""
    paths: list[list[str]] = [[]]

    def walk(group, prefix: list[str]) -> None:
        for name in group.list_commands(None):
            command = group.get_command(None, name)
            paths.append([*prefix, name])
            if hasattr(command, "list_commands"):  # a group (typer's are not click.Group subclasses)
                walk(command, [*prefix, name])

    walk(get_command(app), [])
    return paths


# ---------------------------------------------------------------- help

OPTIONS_IN_HELP = {
    "summarize": ["--model", "--template", "--max-new-tokens"],
    "generate": ["--data", "--out", "--name", "--overwrite", "--batch-size"],
    "evaluate": ["--references", "--predictions", "--json", "--aggregate"],
    "inspect": ["--random-init", "--lora-r", "--json"],
    "data audit": ["--data", "--model", "--max-source-length", "--json"],
}


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "sumlab")
def test_help_for_every_command(path):
    result = ok(*path, "--help")
    assert "Usage:" in result.stdout
    command = get_command(app)
    for name in path:
        command = command.get_command(None, name)
    first_words = " ".join((command.help or "").split()[:3])
    assert first_words in " ".join(result.stdout.split())
    for option in OPTIONS_IN_HELP.get(" ".join(path), []):
        assert option in result.stdout


def test_data_audit_is_a_command():
    assert ["data", "audit"] in command_paths()


# ---------------------------------------------------------------- inspect


def printed_counts(stdout: str) -> dict[str, str]:
    lines = dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)
    return {
        "trainable": lines["trainable model parameters"],
        "total": lines["all model parameters"],
        "percent": lines["percentage of trainable model parameters"],
    }


def test_inspect_random_init_prints_the_checkpoints_count():
    counts = printed_counts(ok("inspect", "google/flan-t5-small", "--random-init").stdout)
    assert counts == {
        "trainable": str(FLAN_T5_SMALL_PARAMETERS),
        "total": str(FLAN_T5_SMALL_PARAMETERS),
        "percent": "100.00%",
    }


def test_inspect_with_lora_writes_consistent_json(tmp_path):
    out = tmp_path / "counts.json"
    result = ok("inspect", "google/flan-t5-small", "--random-init", "--lora-r", "8", "--json", out)
    data = json.loads(out.read_text())
    assert set(data) == {"trainable", "total", "percent"}
    assert data["trainable"] == LORA_R8_SMALL
    assert data["total"] == FLAN_T5_SMALL_PARAMETERS + LORA_R8_SMALL
    assert data["percent"] == pytest.approx(100 * data["trainable"] / data["total"], abs=1e-4)
    printed = printed_counts(result.stdout)
    assert printed["trainable"] == str(data["trainable"])
    assert printed["total"] == str(data["total"])
    assert printed["percent"] == f"{data['percent']:.2f}%"


# ---------------------------------------------------------------- summarize and generate


def test_summarize_from_a_file_and_from_stdin(tmp_path, tiny_model_dir, tiny_model):
    model, tokenizer = tiny_model
    expected = summarize(model, tokenizer, [DIALOGUE], GenerationSettings(max_new_tokens=8, batch_size=1))[0]
    assert expected
    path = tmp_path / "dialogue.txt"
    path.write_text(DIALOGUE + "\n\n", encoding="utf-8")
    options = ["--model", tiny_model_dir, "--dtype", "float32", "--max-new-tokens", "8"]
    from_file = ok("summarize", path, *options)
    from_stdin = ok("summarize", "-", *options, input=DIALOGUE)
    assert from_file.stdout.strip() == expected
    assert from_stdin.stdout.strip() == expected


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_model_dir, dialogsum_dir) -> Path:
    """Predictions of the tiny model for the first four test dialogues, written by `sumlab generate`."""
    out = tmp_path_factory.mktemp("generate") / "predictions.jsonl"
    ok(
        "generate",
        "--model",
        tiny_model_dir,
        "--dtype",
        "float32",
        "--name",
        "tiny-t5",
        "--data",
        dialogsum_dir,
        "--split",
        "test",
        "--limit",
        "4",
        "--max-new-tokens",
        "8",
        "--batch-size",
        "3",
        "--out",
        out,
    )
    return out


def test_generate_writes_one_line_per_dialogue_with_all_references(generated, dialogsum_dir, tiny_model):
    rows = [json.loads(line) for line in generated.read_text(encoding="utf-8").splitlines()]
    test_rows = read_jsonl(dialogsum_dir / "test.jsonl", limit=12)
    assert len(rows) == 4
    assert [row["id"] for row in rows] == ["test_0", "test_1", "test_2", "test_3"]
    for index, row in enumerate(rows):
        source = test_rows[3 * index : 3 * index + 3]
        assert row["dialogue"] == source[0]["dialogue"]
        assert row["references"] == [r["summary"] for r in source]
        assert list(row["predictions"]) == ["tiny-t5"]
    model, tokenizer = tiny_model
    expected = summarize(model, tokenizer, [row["dialogue"] for row in rows], GenerationSettings(max_new_tokens=8))
    assert [row["predictions"]["tiny-t5"] for row in rows] == expected


def test_generate_refuses_to_overwrite_unless_asked(generated, tmp_path, tiny_model_dir, dialogsum_dir):
    out = tmp_path / "predictions.jsonl"
    out.write_bytes(generated.read_bytes())
    before = out.read_bytes()
    options = [
        "--model",
        tiny_model_dir,
        "--data",
        dialogsum_dir,
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
        "--out",
        out,
    ]
    refused = invoke("generate", "--name", "second", *options)
    assert isinstance(refused.exception, SumlabError)
    assert "already exists" in str(refused.exception) and "--overwrite" in str(refused.exception)
    assert out.read_bytes() == before
    ok("generate", "--name", "second", *options, "--overwrite")
    replaced = read_predictions(out)
    assert replaced.models == ["second"]
    assert len(replaced.ids) == 2


# ---------------------------------------------------------------- evaluate


def assert_scores_json(data: dict, models: list[str]) -> None:
    assert list(data) == models
    for metrics in data.values():
        assert list(metrics) == list(ROUGE_KEYS)
        for summary in metrics.values():
            assert set(summary) == {"mean", "ci95"}
            low, high = summary["ci95"]
            assert 0.0 <= low <= summary["mean"] <= high <= 1.0


def test_evaluate_a_predictions_file(generated, tmp_path):
    out = tmp_path / "scores.json"
    result = ok("evaluate", generated, "--json", out)
    data = json.loads(out.read_text())
    assert_scores_json(data, ["tiny-t5"])
    assert data == json.loads(json.dumps(scores_to_json(score_models(read_predictions(generated), EvalSettings()))))
    assert "rouge1" in result.stdout
    # a single model: no improvement column, no caption about improving over itself
    assert "Δ pts" not in result.stdout and "improvement" not in result.stdout


def test_evaluate_the_lab_csv(lab_csv, tmp_path):
    out = tmp_path / "lab.json"
    result = ok(
        "evaluate",
        lab_csv,
        "--references",
        "human_baseline_summaries",
        "--predictions",
        ",".join(LAB_MODELS),
        "--json",
        out,
    )
    data = json.loads(out.read_text())
    assert_scores_json(data, LAB_MODELS)
    assert data["original_model_summaries"]["rouge1"]["mean"] == pytest.approx(0.2333, abs=1e-3)
    # the lab's ranking: both fine-tuned models beat zero-shot on every metric
    for key in ROUGE_KEYS:
        assert data["instruct_model_summaries"][key]["mean"] > data["original_model_summaries"][key]["mean"]
        assert data["peft_model_summaries"][key]["mean"] > data["original_model_summaries"][key]["mean"]
    assert "original_model_summaries" in result.stdout
    assert "Δ pts: absolute improvement over original_model_summaries" in " ".join(result.stdout.split())


def test_texts_with_unicode_line_separators_go_from_generate_to_evaluate_and_compare(tmp_path, tiny_model_dir):
    separators = "\u2028\u2029\u0085"  # valid unescaped in JSON; str.splitlines() would break lines there
    rows = [
        {"id": f"d{i}", "dialogue": f"#Person1#: hi {i}{separators}#Person2#: hello", "summary": f"A{separators}B {i}"}
        for i in range(3)
    ]
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    predictions = tmp_path / "predictions.jsonl"
    model = ["--model", tiny_model_dir, "--dtype", "float32", "--max-new-tokens", "4", "--name", "tiny"]
    ok("generate", *model, "--data", data, "--out", predictions)
    assert all(char in predictions.read_text(encoding="utf-8") for char in separators)  # written unescaped
    read = read_predictions(predictions)
    assert read.dialogues == [row["dialogue"] for row in rows]
    assert read.references == [[row["summary"]] for row in rows]

    ok("evaluate", predictions, "--json", tmp_path / "scores.json")
    assert list(json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))) == ["tiny"]
    ok("compare", predictions, "--out", tmp_path / "report")
    assert (tmp_path / "report" / "results.json").is_file()


# ---------------------------------------------------------------- data audit


def test_data_audit_writes_a_report_per_split(tiny_model_dir, dialogsum_dir, tmp_path):
    out = tmp_path / "audit.json"
    ok(
        "data",
        "audit",
        "--data",
        dialogsum_dir,
        "--model",
        tiny_model_dir,
        "--splits",
        "validation,test",
        "--json",
        out,
    )
    report = json.loads(out.read_text())
    assert list(report) == ["validation", "test"]
    assert (report["validation"]["rows"], report["validation"]["distinct_dialogues"]) == (500, 500)
    assert (report["test"]["rows"], report["test"]["distinct_dialogues"]) == (1500, 500)
    assert report["test"]["round_trip"]["texts_changed"] == 0  # byte-level BPE loses nothing


# ---------------------------------------------------------------- errors, through main()


@dataclass(frozen=True)
class Case:
    args: list[str]
    says: list[str]  # the error line contains each of these
    not_written: str | None = None  # a file that must not exist afterwards


def error_cases(model: Path, dialogsum: Path) -> dict[str, Case]:
    """Bad inputs; relative paths are inside the work directory (see ``error_workdir``)."""
    generate = ["generate", "--model", str(model), "--max-new-tokens", "4"]
    return {
        "missing data path": Case(
            [*generate, "--data", "./nope", "--out", "a.jsonl"], ["data source not found", "nope"], "a.jsonl"
        ),
        "unknown split": Case(
            [*generate, "--data", str(dialogsum), "--split", "bogus", "--out", "b.jsonl"],
            ["unknown split 'bogus'", "train, validation, test"],
            "b.jsonl",
        ),
        "missing column": Case(
            [*generate, "--data", "no-dialogue.jsonl", "--split", "test", "--out", "c.jsonl"],
            ["dialogue", "text"],
            "c.jsonl",
        ),
        "template without slot": Case(
            [*generate, "--data", str(dialogsum), "--limit", "2", "--template", "Summarize this:", "--out", "d.jsonl"],
            ["{dialogue}"],
            "d.jsonl",
        ),
        "empty dialogue": Case(["summarize", "empty.txt", "--model", str(model)], ["dialogue is empty"]),
        "evaluate missing file": Case(
            ["evaluate", "nope.jsonl", "--json", "e.json"], ["file not found", "nope.jsonl"], "e.json"
        ),
        "references without predictions": Case(
            ["evaluate", str(LAB_CSV), "--references", "human_baseline_summaries", "--json", "f.json"],
            ["--references and --predictions go together"],
            "f.json",
        ),
        "no such prediction column": Case(
            [
                "evaluate",
                str(LAB_CSV),
                "--references",
                "human_baseline_summaries",
                "--predictions",
                "original_model_summaries,nope",
                "--json",
                "g.json",
            ],
            ["no column(s) nope", "original_model_summaries"],
            "g.json",
        ),
    }


CASE_NAMES = list(error_cases(Path("."), Path(".")))
# The real console script for a torch-importing command, two light ones and --debug; every case also
# runs in-process through main() below, which costs no import time.
SUBPROCESS_CASES = ["missing data path", "evaluate missing file", "no such prediction column"]


@pytest.fixture(scope="module")
def error_workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("cli-errors")
    (work / "empty.txt").write_text("  \n\n", encoding="utf-8")
    (work / "no-dialogue.jsonl").write_text(json.dumps({"id": "x", "text": "hi", "summary": "s"}) + "\n")
    return work


@pytest.fixture(scope="module", autouse=True)
def console_scripts(request, error_workdir):
    """Start ``python -m sumlab`` for SUBPROCESS_CASES and --debug when this module starts.

    Each run is mostly torch/transformers import time, so they start together, early, and overlap the
    in-process tests; ``outcomes`` collects them. Whatever is still running at the end is killed.
    """
    try:
        model, dialogsum = request.getfixturevalue("tiny_model_dir"), request.getfixturevalue("dialogsum_dir")
    except pytest.skip.Exception:
        yield {}
        return
    if not LAB_CSV.is_file():
        yield {}
        return
    cases = error_cases(model, dialogsum)
    commands = {name: cases[name].args for name in SUBPROCESS_CASES}
    commands["debug"] = ["--debug", "evaluate", "nope.jsonl"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "sumlab", *args],
            cwd=error_workdir,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, args in commands.items()
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
        process.communicate()


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def outcomes(console_scripts) -> dict[str, Outcome]:
    if not console_scripts:
        pytest.skip("needs ../shared/data (DialogSum and the lab's results CSV)")
    results = {}
    for name, process in console_scripts.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = Outcome(process.returncode, stdout, stderr)
    return results


def assert_one_error_line(stderr: str, case: Case) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for words in case.says:
        assert words in lines[0]
    assert "(" in lines[0] and lines[0].endswith(")")  # every error carries a hint


@pytest.mark.parametrize("name", CASE_NAMES)
def test_error_through_main_is_one_line_and_exit_code_2(
    name, error_workdir, tiny_model_dir, dialogsum_dir, monkeypatch, capsys
):
    case = error_cases(tiny_model_dir, dialogsum_dir)[name]
    if str(LAB_CSV) in case.args and not LAB_CSV.is_file():
        pytest.skip(f"no shared data at {LAB_CSV}")
    monkeypatch.chdir(error_workdir)
    monkeypatch.setattr(sys, "argv", ["sumlab", *case.args])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert_one_error_line(capsys.readouterr().err, case)
    if case.not_written:
        assert not (error_workdir / case.not_written).exists()  # nothing is written on error


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_console_script_error_is_one_line_and_exit_code_2(outcomes, error_workdir, tiny_model_dir, dialogsum_dir, name):
    case = error_cases(tiny_model_dir, dialogsum_dir)[name]
    outcome = outcomes[name]
    assert outcome.returncode == 2, outcome.stderr
    assert_one_error_line(outcome.stderr, case)
    if case.not_written:
        assert not (error_workdir / case.not_written).exists()


def test_debug_shows_the_traceback(outcomes):
    outcome = outcomes["debug"]
    assert outcome.returncode not in (0, 2)
    assert "Traceback" in outcome.stderr
    assert "SumlabError: file not found" in outcome.stderr
