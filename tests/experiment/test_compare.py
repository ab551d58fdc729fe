"""``sumlab compare``: the experiment's report rebuilt from an experiment directory or from predictions files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sumlab.config import EvalSettings, ModelEntry, PeftSettings
from sumlab.errors import SumlabError
from sumlab.evaluation.predictions import (
    PredictionSet,
    read_predictions,
    write_predictions,
)
from sumlab.evaluation.schema import Results
from sumlab.experiment.compare import compare, experiment_eval_settings

REPORT_FILES = ("results.json", "report.html", "report.md", "lab_results.csv")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tiny_experiment_config):
    """A two-model experiment (zero-shot base and a 2-step LoRA) on 4 DialogSum test dialogues, own eval settings."""
    from sumlab.experiment.run import run_experiment

    config = tiny_experiment_config(
        "compare-me",
        [
            ModelEntry(name="original", kind="zero_shot"),
            ModelEntry(name="lora", peft=PeftSettings(method="lora", r=4, alpha=8)),
        ],
        rows=(16, 4, 4),
        train={"max_steps": 2, "logging_steps": 1},
        # not the defaults: compare must score with the experiment's own settings to reproduce its results
        eval=EvalSettings(
            aggregate="mean",
            bootstrap_samples=300,
            significance="approximate_randomization",
            significance_samples=500,
            seed=3,
        ),
    )
    root, results = run_experiment(config, out_dir=tmp_path_factory.mktemp("compare") / "experiment")
    return root, results


def single_model_file(results: Results, model: str, path: Path, rename: str | None = None) -> Path:
    """One model's summaries from the results, written as a predictions file."""
    examples = results.examples
    write_predictions(
        path,
        PredictionSet(
            ids=[e.id for e in examples],
            references=[e.references for e in examples],
            predictions={rename or model: [e.predictions[model] for e in examples]},
            dialogues=[e.dialogue for e in examples],
        ),
    )
    return path


def test_compare_an_experiment_directory_reproduces_its_results(experiment, tmp_path):
    from sumlab.cli.app import app

    root, expected = experiment
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["compare", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0, name
    assert list((out / "plots").glob("*.png"))
    rebuilt = json.loads((out / "results.json").read_text(encoding="utf-8"))
    written = json.loads((root / "results.json").read_text(encoding="utf-8"))
    assert rebuilt["baseline"] == written["baseline"]
    assert list(rebuilt["models"]) == list(written["models"])
    for name, model in written["models"].items():
        for field in ("scores", "improvement", "kind", "method", "label", "base_model", "cost", "log"):
            assert rebuilt["models"][name][field] == model[field], (name, field)
    assert written["models"]["lora"]["cost"]["trainable"] > 0 and written["models"]["lora"]["log"]
    assert rebuilt["significance"] == written["significance"]
    assert rebuilt["examples"] == written["examples"]
    assert rebuilt["setup"] == {**written["setup"], "sources": [str(root)]}
    assert "created" not in rebuilt
    assert (out / "lab_results.csv").read_text(encoding="utf-8") == (root / "lab_results.csv").read_text(
        encoding="utf-8"
    )


def test_compare_merges_separate_prediction_files(experiment, tmp_path):
    root, expected = experiment
    base = single_model_file(expected, "original", tmp_path / "base.jsonl", rename="base")
    adapter = single_model_file(expected, "lora", tmp_path / "adapter.jsonl", rename="adapter")
    out = tmp_path / "report"
    assert experiment_eval_settings([base, adapter]) is None  # files carry no eval settings: scored as told
    results = compare([base, adapter], out, experiment_eval_settings([root]), name="two files")
    assert results.name == "two files" and results.baseline == "base"
    assert list(results.models) == ["base", "adapter"]
    assert results.models["base"].scores == expected.models["original"].scores
    assert results.models["adapter"].scores == expected.models["lora"].scores
    assert results.models["adapter"].improvement == expected.models["lora"].improvement
    assert results.models["adapter"].cost is None  # a predictions file says nothing about training
    assert [row.a + "-" + row.b for row in results.significance] == ["adapter-base"] * 4
    assert all(len(example.references) == 3 for example in results.examples)
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    merged = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert merged["models"].keys() == {"base", "adapter"}
    assert merged["setup"] == {"sources": [str(base), str(adapter)]}  # files know nothing else


def test_compare_refuses_predictions_on_different_dialogues(experiment, tmp_path):
    _, expected = experiment
    base = single_model_file(expected, "original", tmp_path / "base.jsonl")
    fewer = read_predictions(single_model_file(expected, "lora", tmp_path / "lora.jsonl"))
    write_predictions(
        tmp_path / "fewer.jsonl",
        PredictionSet(
            ids=fewer.ids[:-1],
            references=fewer.references[:-1],
            predictions={"lora": fewer.predictions["lora"][:-1]},
            dialogues=fewer.dialogues[:-1],
        ),
    )
    renamed = PredictionSet(
        ids=[f"other_{i}" for i in fewer.ids],
        references=fewer.references,
        predictions=fewer.predictions,
        dialogues=fewer.dialogues,
    )
    write_predictions(tmp_path / "renamed.jsonl", renamed)
    for other in ("fewer.jsonl", "renamed.jsonl"):
        with pytest.raises(SumlabError, match="different dialogues"):
            compare([base, tmp_path / other], tmp_path / f"out-{other}")
        assert not (tmp_path / f"out-{other}" / "results.json").exists()


def test_compare_refuses_the_same_model_twice(experiment, tmp_path):
    root, expected = experiment
    again = single_model_file(expected, "lora", tmp_path / "lora.jsonl")
    with pytest.raises(SumlabError, match="'lora' appears in more than one input"):
        compare([root, again], tmp_path / "out")


def test_compare_needs_a_finished_experiment_or_a_file(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(SumlabError, match="has no results.json"):
        compare([tmp_path / "half"], tmp_path / "out")
    with pytest.raises(SumlabError, match="not found"):
        compare([tmp_path / "missing.jsonl"], tmp_path / "out")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "is not a sumlab results file: Invalid JSON"),
        (json.dumps({"name": "x", "baseline": "a", "models": {"a": {"kind": "trained"}}}), "models.a.kind"),
        (json.dumps([1, 2]), "is not a sumlab results file"),
    ],
)
def test_compare_refuses_a_broken_or_foreign_results_file_with_one_line(
    tmp_path_factory, monkeypatch, capsys, content, says
):
    from sumlab.cli.app import main

    work = tmp_path_factory.mktemp("foreign")  # not under tmp_path: conftest checks every results.json there
    (work / "experiment").mkdir()
    (work / "experiment" / "results.json").write_text(content, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["sumlab", "compare", str(work / "experiment"), "--out", str(work / "out")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert "results.json" in lines[0] and lines[0].endswith("wrote)")  # with its hint
    assert not (work / "out").exists()


def test_cli_refuses_an_existing_out_with_one_line(tmp_path):
    predictions = tmp_path / "p.jsonl"
    write_predictions(predictions, PredictionSet(ids=["a"], references=[["a cat"]], predictions={"m": ["a cat"]}))
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    finished = subprocess.run(
        [sys.executable, "-m", "sumlab", "compare", str(predictions), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "already exists" in lines[0], finished.stderr
    assert "--overwrite" in lines[0]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_compare_scores_with_the_given_settings(tmp_path):
    predictions = tmp_path / "p.jsonl"
    write_predictions(
        predictions,
        PredictionSet(
            ids=["a", "b"],
            references=[["a cat sat", "the dog ran"], ["we meet at noon"]],
            predictions={"m": ["the dog sat", "we meet"], "n": ["a cat sat", "noon"]},
        ),
    )
    by_max = compare([predictions], tmp_path / "max", EvalSettings(aggregate="max"))
    by_mean = compare([predictions], tmp_path / "mean", EvalSettings(aggregate="mean"))
    assert by_mean.models["n"].scores["rouge1"].mean < by_max.models["n"].scores["rouge1"].mean
