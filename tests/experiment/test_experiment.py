"""``sumlab run``: a tiny end-to-end experiment, its artifacts, stage caching and resume, and the baseline.

One experiment (zero-shot / full / LoRA on the tiny T5 and 6 DialogSum test dialogues) is built once per
module, in two goes: the first crashes while generating LoRA's summaries, the second finishes it. The
tests then read what each go left behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import sumlab.experiment.run as experiment_module
from sumlab.config import (
    DataConfig,
    ExperimentConfig,
    GenerationSettings,
    ModelEntry,
    PeftSettings,
    SplitSelection,
    build_config,
    to_yaml,
)
from sumlab.errors import SumlabError
from sumlab.evaluation.predictions import read_predictions
from sumlab.evaluation.rouge import ROUGE_KEYS
from sumlab.evaluation.schema import SCHEMA_FILE
from sumlab.experiment.run import run_experiment

TRAINED = ("full", "lora")
MODELS = ("original", *TRAINED)
STAGES = ("train-full", "train-lora", "generate-original", "generate-full", "generate-lora")
TEST_DIALOGUES = 6
LAB_MODELS = (
    ModelEntry(name="original", kind="zero_shot", label="zero-shot base"),
    ModelEntry(name="full", peft=PeftSettings(method="full"), label="full fine-tuning"),
    ModelEntry(name="lora", peft=PeftSettings(method="lora", r=4, alpha=8), label="LoRA"),
)


def lab_config(
    tiny_experiment_config, name: str = "tiny-lab", models: Sequence[ModelEntry] = LAB_MODELS
) -> ExperimentConfig:
    """The lab's three models on the tiny T5: 48 training dialogues, 4 steps, 6 test dialogues, 8 new tokens.

    ``tiny_experiment_config`` is the conftest fixture that builds it.
    """
    train = {"max_steps": 4, "per_device_eval_batch_size": 8, "logging_steps": 1}
    return tiny_experiment_config(name, list(models), rows=(48, 8, TEST_DIALOGUES), train=train)


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, by relative path."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def markers(root: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((root / "stages").glob("*.json"))}


def counting(calls: list, kind: str, function):
    """``function`` that records ``(kind, model name)`` before it runs."""

    def wrapper(config, entry, *args):
        calls.append((kind, entry.name))
        return function(config, entry, *args)

    return wrapper


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tiny_model_dir, tiny_experiment_config):
    """The tiny experiment: first crashed while generating with LoRA, then rerun to the end."""
    config = lab_config(tiny_experiment_config)
    root = tmp_path_factory.mktemp("experiment") / "tiny-lab"
    base_before = file_digests(tiny_model_dir)
    real_generate, real_train = experiment_module.generate_predictions, experiment_module.train_model

    def crash_on_lora(config, entry, paths, groups):
        if entry.name == "lora":
            raise RuntimeError("simulated crash while generating lora's summaries")
        return real_generate(config, entry, paths, groups)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(experiment_module, "generate_predictions", crash_on_lora)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_experiment(config, out_dir=root)
    after_crash = SimpleNamespace(markers=markers(root), files=file_digests(root))

    calls: list[tuple[str, str]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(experiment_module, "train_model", counting(calls, "train", real_train))
        patch.setattr(experiment_module, "generate_predictions", counting(calls, "generate", real_generate))
        returned_root, results = run_experiment(config, out_dir=root)
    return SimpleNamespace(
        config=config,
        root=returned_root,
        results=results,
        after_crash=after_crash,
        resume_calls=calls,
        base_before=base_before,
        base_model=tiny_model_dir,
    )


# -- the artifacts ------------------------------------------------------------------------------------------------


def test_run_writes_every_artifact(experiment):
    root = experiment.root
    assert (root / "config.yaml").read_text(encoding="utf-8") == to_yaml(experiment.config)
    assert sorted(p.stem for p in (root / "stages").glob("*.json")) == sorted(STAGES)
    for stage in STAGES:
        marker = json.loads((root / "stages" / f"{stage}.json").read_text())
        assert marker["finished"] and marker["seconds"] >= 0
    assert (root / "runs" / "full" / "model" / "model.safetensors").is_file()
    assert (root / "runs" / "lora" / "model" / "adapter_config.json").is_file()
    assert not (root / "runs" / "original").exists()  # the zero-shot base is never trained
    for name in MODELS:
        assert read_predictions(root / "predictions" / f"{name}.jsonl").models == [name]
    for name in ("results.json", "report.html", "report.md", "lab_results.csv"):
        assert (root / name).stat().st_size > 0, name
    assert {p.name for p in (root / "plots").glob("*.png")} == {
        "rouge_bars.png",
        "loss_curves.png",
        "summary_lengths.png",
    }
    html = (root / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 3  # the plots are embedded: the file works on its own
    on_disk = json.loads((root / "results.json").read_text(encoding="utf-8"))
    assert on_disk == experiment.results.to_json()


def test_results_follow_the_schema(experiment):
    jsonschema = pytest.importorskip("jsonschema")
    written = json.loads((experiment.root / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(written, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert list(written) == [
        "name",
        "setup",
        "baseline",
        "models",
        "significance",
        "examples",
        "highlight",
        "lab_csv",
        "created",
    ]
    assert list(written["setup"]) == [
        "base_model",
        "dataset",
        "splits",
        "eval",
        "prompt",
        "generation",
        "versions",
        "hardware",
        "wall_seconds",
    ]  # no compare sources in an experiment's setup
    results = experiment.results
    assert results.name == "tiny-lab" and results.baseline == "original" and results.lab_csv == "lab_results.csv"
    assert results.created
    setup = results.setup
    assert setup.base_model == str(experiment.base_model)
    assert setup.dataset == experiment.config.data.source
    assert setup.splits == {"train": 48, "validation": 8}
    assert setup.eval.split == "test" and setup.eval.dialogues == TEST_DIALOGUES
    assert "{dialogue}" in setup.prompt
    assert setup.generation["max_new_tokens"] == 8
    assert {"sumlab", "torch", "transformers", "peft", "python"} <= setup.versions.keys()
    assert setup.hardware.device in ("cpu", "cuda")
    assert setup.wall_seconds > 0
    assert list(results.models) == list(MODELS)
    for name, model in results.models.items():
        for key in ROUGE_KEYS:
            score = model.scores[key]
            assert 0 <= score.ci95[0] <= score.mean <= score.ci95[1] <= 1, (name, key)
    assert results.models["original"].kind == "zero_shot" and results.models["full"].kind == "train"
    assert results.models["lora"].method == "lora" and results.models["lora"].label == "LoRA"


def test_dialogsum_test_dialogues_keep_their_three_references(experiment):
    examples = experiment.results.examples
    assert len(examples) == TEST_DIALOGUES
    assert len({example.id for example in examples}) == TEST_DIALOGUES
    assert all(len(example.references) == 3 for example in examples)
    assert experiment.results.setup.eval.references_per_dialogue == 3
    # the examples carry exactly what each model's predictions file holds
    for name in MODELS:
        written = read_predictions(experiment.root / "predictions" / f"{name}.jsonl")
        assert [example.predictions[name] for example in examples] == written.predictions[name]
        assert [example.references for example in examples] == written.references
    # the lab's example 200 is out of range for 6 dialogues: the first one is shown instead
    assert experiment.results.highlight == [examples[0].id]


def test_improvement_and_significance(experiment):
    models = experiment.results.models
    assert models["original"].improvement == {key: 0 for key in ROUGE_KEYS}
    for name in TRAINED:
        for key in ROUGE_KEYS:
            expected = (models[name].scores[key].mean - models["original"].scores[key].mean) * 100
            assert models[name].improvement[key] == pytest.approx(expected, abs=1e-4)
    rows = experiment.results.significance
    assert len(rows) == 3 * len(ROUGE_KEYS)
    assert {(row.a, row.b, row.metric) for row in rows} == {
        (a, b, key) for a, b in (("full", "original"), ("lora", "original"), ("lora", "full")) for key in ROUGE_KEYS
    }
    for row in rows:
        assert 0 < row.p_value <= 1
        delta = models[row.a].scores[row.metric].mean - models[row.b].scores[row.metric].mean
        assert row.delta == pytest.approx(delta, abs=1e-9)


def test_costs_of_trained_models(experiment):
    models = experiment.results.models
    assert models["original"].cost is None
    costs = {name: models[name].cost for name in TRAINED}
    for name, cost in costs.items():
        assert 0 < cost.trainable <= cost.total, name
        assert cost.train_seconds > 0 and cost.peak_memory_bytes > 0 and cost.saved_bytes > 0
        assert models[name].log, f"{name} has no training log"
        summary = json.loads((experiment.root / "runs" / name / "summary.json").read_text(encoding="utf-8"))
        assert cost.trainable == summary["parameters"]["trainable"] and cost.train_seconds == summary["wall_seconds"]
    assert costs["full"].trainable == costs["full"].total
    assert costs["lora"].percent < costs["full"].percent
    assert costs["lora"].saved_bytes < costs["full"].saved_bytes  # an adapter is smaller than a model


# -- caching and resume --------------------------------------------------------------------------------------------


def test_a_failed_stage_leaves_the_finished_ones_intact(experiment):
    crashed = experiment.after_crash
    assert sorted(crashed.markers) == sorted(set(STAGES) - {"generate-lora"})
    assert "predictions/original.jsonl" in crashed.files and "predictions/full.jsonl" in crashed.files
    assert "predictions/lora.jsonl" not in crashed.files
    assert "runs/lora/model/adapter_model.safetensors" in crashed.files
    assert "results.json" not in crashed.files  # nothing is reported from a half-finished experiment
    # the rerun kept every finished stage's marker and artifacts as they were
    now = file_digests(experiment.root)
    for stage, content in crashed.markers.items():
        assert (experiment.root / "stages" / f"{stage}.json").read_bytes() == content, stage
    for path in (
        "predictions/original.jsonl",
        "predictions/full.jsonl",
        "runs/full/model/model.safetensors",
        "runs/lora/model/adapter_model.safetensors",
        "runs/full/summary.json",
        "runs/lora/summary.json",
    ):
        assert now[path] == crashed.files[path], path


def test_the_rerun_after_a_failure_runs_only_the_missing_stage(experiment):
    assert experiment.resume_calls == [("generate", "lora")]


def test_rerunning_a_finished_experiment_runs_no_stage(experiment, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(experiment_module, "train_model", must_not_run)
    monkeypatch.setattr(experiment_module, "generate_predictions", must_not_run)
    stages = experiment.root / "stages"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in stages.iterdir()}
    root, results = run_experiment(experiment.config, out_dir=experiment.root)
    assert root == experiment.root
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in stages.iterdir()} == before
    for name in MODELS:
        assert results.models[name].scores == experiment.results.models[name].scores
    assert results.significance == experiment.results.significance


# -- the baseline never changes -----------------------------------------------------------------------------------


def test_training_never_changes_the_base_model_files(experiment):
    assert file_digests(experiment.base_model) == experiment.base_before


def test_zero_shot_summaries_equal_a_fresh_base_model_after_training(experiment):
    """The lab wraps its original model in place with get_peft_model, so its "original" drifts; ours must not."""
    from sumlab.generation.batching import summarize
    from sumlab.models.loading import load_model, load_tokenizer
    from sumlab.text.prompts import resolve_template

    config = experiment.config
    written = read_predictions(experiment.root / "predictions" / "original.jsonl")
    fresh = summarize(
        load_model(config.model),
        load_tokenizer(config.model),
        written.dialogues,
        config.generation,
        resolve_template(config.prompt),
    )
    assert fresh == written.predictions["original"]
    stages = experiment.root / "stages"  # and they were generated after both trainings
    assert (stages / "generate-original.json").stat().st_mtime_ns >= (stages / "train-lora.json").stat().st_mtime_ns


# -- configuration ------------------------------------------------------------------------------------------------


def test_another_config_on_an_existing_experiment_is_refused(experiment):
    before = file_digests(experiment.root)
    changed = experiment.config.model_copy(
        update={"generation": GenerationSettings(max_new_tokens=9, max_source_length=128)}
    )
    with pytest.raises(SumlabError, match="config differs") as refused:
        run_experiment(changed, out_dir=experiment.root)
    assert "--overwrite" in str(refused.value)
    assert file_digests(experiment.root) == before


def test_overwrite_replaces_and_pretrained_entries_reuse_trained_runs(experiment, tiny_experiment_config, tmp_path):
    """``pretrained`` models given as the first experiment's run directories summarize exactly as they did there."""
    target = tmp_path / "reused"
    shutil.copytree(experiment.root, target)
    runs = experiment.root / "runs"
    config = lab_config(
        tiny_experiment_config,
        name="reused",
        models=[
            ModelEntry(name="original", kind="zero_shot"),
            ModelEntry(name="lora_again", kind="pretrained", path=str(runs / "lora")),  # a run directory
            ModelEntry(name="full_again", kind="pretrained", path=str(runs / "full" / "model")),  # a model directory
        ],
    )
    root, results = run_experiment(config, out_dir=target, overwrite=True)
    assert root == target
    assert not (target / "runs").exists()  # the old experiment is gone, nothing was trained
    assert sorted(p.stem for p in (target / "stages").glob("*.json")) == [
        "generate-full_again",
        "generate-lora_again",
        "generate-original",
    ]
    assert list(results.models) == ["original", "lora_again", "full_again"]
    assert results.models["lora_again"].kind == "pretrained"
    first = {example.id: example.predictions for example in experiment.results.examples}
    for example in results.examples:
        assert example.predictions["lora_again"] == first[example.id]["lora"]
        assert example.predictions["full_again"] == first[example.id]["full"]
        assert example.predictions["original"] == first[example.id]["original"]
    # a model from a run directory (or the model/ inside one) brings that run's cost, log and method along
    trained = experiment.results.models
    for again, name in (("lora_again", "lora"), ("full_again", "full")):
        model = results.models[again]
        assert model.cost is not None and model.cost == trained[name].cost, again
        assert model.log == trained[name].log and model.method == name, again
    assert results.models["original"].cost is None
    cost_table = (target / "report.html").read_text(encoding="utf-8").split('id="cost-table"')[1]
    cost_row = re.search(r'<tr><th scope="row" class="">lora_again</th>(.*?)</tr>', cost_table).group(1)
    assert "—" not in cost_row and f"{trained['lora'].cost.trainable:,}" in cost_row
    # the lab's CSV gives them the lab's columns as it does for models trained in the experiment
    with (target / "lab_results.csv").open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header[2:] == ["original_model_summaries", "instruct_model_summaries", "peft_model_summaries"]


def test_overwrite_never_deletes_a_directory_that_is_not_an_experiment(tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    config = ExperimentConfig(models=[ModelEntry(name="original", kind="zero_shot")])
    with pytest.raises(SumlabError, match="holds no experiment"):
        run_experiment(config, out_dir=precious, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_repeated_model_names_are_a_clear_error():
    entries = [
        {"name": "original", "kind": "zero_shot"},
        {"name": "lora"},
        {"name": "lora", "peft": {"method": "lora"}},
    ]
    with pytest.raises(SumlabError, match="model names must be unique; repeated: lora"):
        build_config(ExperimentConfig, {"models": entries}, "lab.yaml")


def test_pretrained_without_a_path_is_a_clear_error():
    with pytest.raises(SumlabError, match=r"lab.yaml: models\[0\] \(mine\): kind pretrained needs a path"):
        build_config(ExperimentConfig, {"models": [{"name": "mine", "kind": "pretrained"}]}, "lab.yaml")


def test_a_missing_pretrained_path_is_a_clear_error_before_anything_runs(tmp_path, dialogsum_dir, monkeypatch):
    config = ExperimentConfig(
        data=DataConfig(source=str(dialogsum_dir), test=SplitSelection(split="test", limit=2)),
        models=[
            ModelEntry(name="full", peft=PeftSettings(method="full")),
            ModelEntry(name="mine", kind="pretrained", path=str(tmp_path / "no-such-run")),
        ],
    )
    monkeypatch.setattr(experiment_module, "train_model", lambda *args: pytest.fail("training started"))
    with pytest.raises(SumlabError, match=r"models\[1\] \(mine\): path: model path not found"):
        run_experiment(config, out_dir=tmp_path / "experiment")
    assert not (tmp_path / "experiment").exists()


def run_command_error(args: list[str], monkeypatch, capsys) -> str:
    """The one error line of ``sumlab <args>`` (through main(), as the console script), which must exit with 2."""
    from sumlab.cli.app import main

    monkeypatch.setattr(sys, "argv", ["sumlab", *args])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith(")"), lines
    return lines[0]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (
            "{name: lora, peft: {method: lora}, train: {learning_rat: 0.001}}",
            "models[1] (lora): unknown key 'train.learning_rat'",
        ),
        ("{name: lora, peft: {method: lora}, train: {max_steps: -5}}", "models[1] (lora): train.max_steps: "),
        (
            "{name: mine, kind: pretrained, path: no-such-run}",
            "models[1] (mine): path: model path not found: no-such-run",
        ),
    ],
)
def test_sumlab_run_refuses_a_bad_entry_in_one_line_and_writes_nothing(
    entry, says, tmp_path, tiny_model_dir, dialogsum_dir, monkeypatch, capsys
):
    config = tmp_path / "experiment.yaml"
    config.write_text(
        f"model: {{name_or_path: {tiny_model_dir}}}\ndata: {{source: {dialogsum_dir}}}\n"
        f"models:\n  - {{name: original, kind: zero_shot}}\n  - {entry}\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(experiment_module, "evaluation_groups", lambda *args: pytest.fail("the experiment started"))
    line = run_command_error(["run", str(config), "--out", "experiment"], monkeypatch, capsys)
    assert says in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.yaml"]  # nothing written


# -- the lab's CSV --------------------------------------------------------------------------------------------------


def test_lab_csv_round_trips_through_sumlab_evaluate(experiment, tmp_path):
    from sumlab.cli.app import app
    from sumlab.evaluation.rouge import rouge_per_example

    csv_path = experiment.root / "lab_results.csv"
    columns = {
        "original": "original_model_summaries",
        "full": "instruct_model_summaries",
        "lora": "peft_model_summaries",
    }
    scores_path = tmp_path / "scores.json"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(csv_path),
            "--references",
            "human_baseline_summaries",
            "--predictions",
            ",".join(columns.values()),
            "--json",
            str(scores_path),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(scores_path.read_text())
    assert list(scores) == list(columns.values())

    examples = experiment.results.examples
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * len(examples)  # one row per (dialogue, reference), as in the lab
    assert list(rows[0]) == ["", "human_baseline_summaries", *columns.values()]
    references = [reference for example in examples for reference in example.references]
    assert [row["human_baseline_summaries"] for row in rows] == references
    for model, column in columns.items():
        predictions = [example.predictions[model] for example in examples for _ in example.references]
        direct = rouge_per_example(predictions, references)
        for key in ROUGE_KEYS:
            assert scores[column][key]["mean"] == pytest.approx(float(direct[key].mean()), abs=1e-12), (model, key)
