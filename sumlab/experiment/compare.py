"""``sumlab compare``: the experiment's report rebuilt from existing experiments or prediction files.

:func:`report_predictions` is the last stage of ``sumlab run`` as well: score, test, and write the results,
the lab's CSV and the report.
"""

from __future__ import annotations

from pathlib import Path

from sumlab.config import EvalSettings, ExperimentConfig, load_config
from sumlab.errors import SumlabError
from sumlab.evaluation.predictions import (
    PredictionSet,
    merge_prediction_sets,
    read_predictions,
)
from sumlab.evaluation.results import build_results, write_lab_csv
from sumlab.evaluation.schema import ModelInfo, Results, Setup, read_results
from sumlab.evaluation.scoring import score_models
from sumlab.runtime.fileio import write_json_atomic

RESULTS_FILE = "results.json"


def report_predictions(predictions: PredictionSet, settings: EvalSettings, out_dir: Path, **document) -> Results:
    """Score every model, test every pair, and write ``results.json``, the lab's CSV and the report to ``out_dir``.

    Args:
        document: what the results say besides the scores (``name``, ``setup``, ``models_info``, ``created``), as
            :func:`sumlab.evaluation.results.build_results` takes them.

    Returns:
        The results document, as written to ``out_dir / "results.json"``.
    """
    from sumlab.report import write_report

    scores = score_models(predictions, settings)
    results = build_results(predictions, scores, settings, **document)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / RESULTS_FILE, results.to_json())
    write_lab_csv(results, out_dir)
    write_report(results, out_dir)
    return results


def read_input(path: Path) -> tuple[list[PredictionSet], dict[str, ModelInfo], Setup | None]:
    """Prediction sets, per-model info and setup from an experiment directory or a predictions file.

    Raises:
        SumlabError: the path is missing, or a directory without a valid ``results.json``.
    """
    if path.is_dir():
        results_file = path / RESULTS_FILE
        if not results_file.is_file():
            raise SumlabError(
                f"{path} has no {RESULTS_FILE}", "give a finished `sumlab run` directory or a predictions file"
            )
        results = read_results(results_file)
        sets = [read_predictions(path / "predictions" / f"{name}.jsonl") for name in results.models]
        return sets, {name: model.info() for name, model in results.models.items()}, results.setup
    if not path.is_file():
        raise SumlabError(f"not found: {path}", "give experiment directories or predictions files")
    return [read_predictions(path)], {}, None


def experiment_eval_settings(inputs: list[Path]) -> EvalSettings | None:
    """The eval settings of the first experiment directory among ``inputs`` (None when there is none)."""
    for path in map(Path, inputs):
        if (path / "config.yaml").is_file() and (path / RESULTS_FILE).is_file():
            return load_config(ExperimentConfig, path / "config.yaml").eval
    return None


def compare(
    inputs: list[Path], out_dir: Path, settings: EvalSettings | None = None, name: str = "comparison"
) -> Results:
    """Score every model found in ``inputs`` on their shared dialogues and write the report to ``out_dir``.

    Without ``settings``, the first experiment's own eval settings are used (the defaults without one), so that
    an experiment compared alone reproduces its results. The setup is the first experiment's, plus the inputs.
    """
    settings = settings or experiment_eval_settings(inputs) or EvalSettings()
    sets, info, setup = [], {}, None
    for path in inputs:
        input_sets, input_info, input_setup = read_input(Path(path))
        sets.extend(input_sets)
        info.update(input_info)
        setup = setup or input_setup
    setup = (setup or Setup()).model_copy(update={"sources": [str(p) for p in inputs]})
    return report_predictions(merge_prediction_sets(sets), settings, out_dir, name=name, setup=setup, models_info=info)
