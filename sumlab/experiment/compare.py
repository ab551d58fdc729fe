"""``sumlab compare``: the experiment's report rebuilt from existing experiments or prediction files."""

from __future__ import annotations

import json
from pathlib import Path

from sumlab.config import EvalSettings, ExperimentConfig, load_config
from sumlab.errors import SumlabError
from sumlab.evaluation.predictions import (
    PredictionSet,
    merge_prediction_sets,
    read_predictions,
)
from sumlab.evaluation.results import build_results, score_models, write_lab_csv
from sumlab.runtime.fileio import write_json_atomic


def read_input(path: Path) -> tuple[list[PredictionSet], dict, dict]:
    """Prediction sets, per-model info and setup from an experiment directory or a predictions file."""
    if path.is_dir():
        results_file = path / "results.json"
        if not results_file.is_file():
            raise SumlabError(f"{path} has no results.json", "give a finished `sumlab run` directory or a predictions file")
        results = json.loads(results_file.read_text(encoding="utf-8"))
        sets = [read_predictions(path / "predictions" / f"{name}.jsonl") for name in results["models"]]
        info = {name: {k: model.get(k) for k in ("kind", "method", "label", "base_model", "cost", "log")}
                for name, model in results["models"].items()}
        return sets, info, results.get("setup", {})
    if not path.is_file():
        raise SumlabError(f"not found: {path}", "give experiment directories or predictions files")
    return [read_predictions(path)], {}, {}


def experiment_eval_settings(inputs: list[Path]) -> EvalSettings | None:
    """The eval settings of the first experiment directory among ``inputs`` (None when there is none)."""
    for path in map(Path, inputs):
        if (path / "config.yaml").is_file() and (path / "results.json").is_file():
            return load_config(ExperimentConfig, path / "config.yaml").eval
    return None


def compare(inputs: list[Path], out_dir: Path, settings: EvalSettings | None = None, name: str = "comparison") -> dict:
    """Score every model found in ``inputs`` on their shared dialogues and write the report to ``out_dir``.

    Without ``settings``, the first experiment's own eval settings are used (the defaults without one), so that
    an experiment compared alone reproduces its results.
    """
    from sumlab.report import write_report

    settings = settings or experiment_eval_settings(inputs) or EvalSettings()
    sets, info, setup = [], {}, {}
    for path in inputs:
        input_sets, input_info, input_setup = read_input(Path(path))
        sets.extend(input_sets)
        info.update(input_info)
        setup = setup or input_setup
    predictions = merge_prediction_sets(sets)
    scores = score_models(predictions, settings)
    setup = {**setup, "sources": [str(p) for p in inputs]}
    results = build_results(predictions, scores, settings, name=name, setup=setup, models_info=info)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "results.json", results)
    write_lab_csv(results, out_dir)
    write_report(results, out_dir)
    return results
