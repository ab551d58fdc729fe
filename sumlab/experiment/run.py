"""``sumlab run``: the lab's whole experiment as cached, resumable stages.

Stages: train each trained model; generate summaries for the evaluation split with every model
(the same generation settings for all); score, test and report. A finished stage leaves a marker
in ``stages/`` and is skipped on a rerun; a stage that fails leaves the finished ones intact.
Every model is loaded fresh from disk, so training never touches the baseline's weights.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from sumlab.config import ExperimentConfig, ModelConfig, ModelEntry, to_yaml
from sumlab.data.loading import (
    ReferenceGroup,
    group_references,
    load_split,
    select_groups,
)
from sumlab.errors import SumlabError
from sumlab.evaluation.predictions import (
    PredictionSet,
    merge_prediction_sets,
    read_predictions,
    write_predictions,
)
from sumlab.evaluation.schema import (
    EvalSetup,
    Hardware,
    ModelInfo,
    Results,
    Setup,
    read_run_summary,
)
from sumlab.experiment.compare import RESULTS_FILE, report_predictions
from sumlab.generation.batching import summarize
from sumlab.generation.ctranslate2_engine import check_engine_ready
from sumlab.models.adapters import attach_adapter
from sumlab.models.loading import load_model, load_tokenizer
from sumlab.models.resolve import require_saved_model
from sumlab.runtime.distributed import is_main_process, run_on_main
from sumlab.runtime.fileio import write_json_atomic, write_text_atomic
from sumlab.runtime.progress import stage as progress_stage
from sumlab.text.prompts import resolve_template
from sumlab.training.run_dir import RunPaths, read_log

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentPaths:
    """Where each artifact of an experiment lives."""

    root: Path

    config = property(lambda self: self.root / "config.yaml")
    stages = property(lambda self: self.root / "stages")
    runs = property(lambda self: self.root / "runs")
    predictions = property(lambda self: self.root / "predictions")
    results = property(lambda self: self.root / RESULTS_FILE)

    def stage_marker(self, stage: str) -> Path:
        return self.stages / f"{stage}.json"

    def run(self, model_name: str) -> RunPaths:
        return RunPaths(self.runs / model_name)


def check_experiment_dir(root: Path, config_yaml: str, overwrite: bool) -> None:
    """Refuse a directory that holds something else: a non-experiment, or another experiment without --overwrite."""
    paths = ExperimentPaths(Path(root))
    if not (paths.root.exists() and any(paths.root.iterdir())):
        return
    if not paths.config.is_file():  # never delete, or add to, a directory that is not an experiment
        raise SumlabError(
            f"{paths.root} is not empty and holds no experiment (no config.yaml)",
            "choose another --out",
        )
    if not overwrite and paths.config.read_text(encoding="utf-8") != config_yaml:
        raise SumlabError(
            f"{paths.root} holds another experiment (its config differs)",
            "use another --out, or --overwrite to start again",
        )


def prepare_experiment_dir(root: Path, config_yaml: str, overwrite: bool) -> ExperimentPaths:
    """Create the experiment directory, or reopen it to continue when its config is the same."""
    import shutil

    check_experiment_dir(root, config_yaml, overwrite)
    paths = ExperimentPaths(Path(root))
    if overwrite and paths.config.is_file():
        shutil.rmtree(paths.root)
    paths.root.mkdir(parents=True, exist_ok=True)
    if not paths.config.is_file():
        write_text_atomic(paths.config, config_yaml)
    return paths


def run_stage(
    paths: ExperimentPaths, stage: str, action: Callable[[], None], place: tuple[int, int] | None = None
) -> bool:
    """Run ``action`` unless ``stage`` finished before; mark it finished. Returns whether it ran.

    With several processes, all run the action (each does its share) and rank 0 decides and marks.
    ``place`` (this stage's number, and how many there are) goes into the progress bars' label.
    """
    marker = paths.stage_marker(stage)
    if run_on_main(marker.is_file):
        log.info("stage %s: done before, skipped", stage)
        return False
    log.warning("stage %s: running", stage)
    started = time.perf_counter()
    with progress_stage(stage, place):
        action()
    run_on_main(write_json_atomic, marker, {"finished": _now(), "seconds": round(time.perf_counter() - started, 3)})
    return True


def evaluation_groups(config: ExperimentConfig) -> list[ReferenceGroup]:
    """The evaluation dialogues (test split), each with all of its references, subsampled by whole groups."""
    selection = config.data.test
    rows = load_split(config.data.source, selection.split, config.data.columns)
    return select_groups(
        group_references(rows),
        limit=selection.limit,
        every_nth=selection.every_nth,
        shuffle=selection.shuffle,
        seed=config.data.seed,
    )


def train_model(config: ExperimentConfig, entry: ModelEntry, paths: ExperimentPaths) -> None:
    """Train one model of the experiment into ``runs/<name>``, resuming an interrupted run."""
    from sumlab.training.trainer import train

    run = paths.run(entry.name)
    started = run_on_main(run.config.is_file)
    train(config.train_config(entry), out_dir=run.root, resume=started, overwrite=not started)


def load_for_generation(config: ExperimentConfig, entry: ModelEntry, paths: ExperimentPaths):
    """A fresh model and tokenizer for ``entry``: the base, a trained run, or a given checkpoint/adapter."""
    base_config = config.base_model(entry)
    if config.generation.engine == "ctranslate2":
        return load_engine_for(config, entry, paths)
    if entry.kind == "zero_shot":
        return load_model(base_config), load_tokenizer(base_config)
    saved = require_saved_model(paths.run(entry.name).root if entry.kind == "train" else entry.path)
    if saved.kind == "adapter":
        model = attach_adapter(load_model(base_config), saved.directory, allow_pickle=base_config.allow_pickle)
        return model, load_tokenizer(ModelConfig(name_or_path=str(saved.directory)))
    model_config = ModelConfig(
        name_or_path=str(saved.directory), dtype=base_config.dtype, allow_pickle=base_config.allow_pickle
    )
    return load_model(model_config), load_tokenizer(model_config)


def load_engine_for(config: ExperimentConfig, entry: ModelEntry, paths: ExperimentPaths):
    """``entry``'s model converted to CTranslate2 (cached) and its tokenizer; an adapter merges into the base."""
    from sumlab.generation.ctranslate2_engine import load_engine

    base_config = config.base_model(entry)
    if entry.kind == "zero_shot":
        model_config = base_config
    else:
        source = paths.run(entry.name).root if entry.kind == "train" else entry.path
        model_config = ModelConfig(name_or_path=str(source), allow_pickle=base_config.allow_pickle)
    return load_engine(model_config, config.generation.compute_type, adapter_base=base_config.name_or_path)


def generate_predictions(
    config: ExperimentConfig, entry: ModelEntry, paths: ExperimentPaths, groups: list[ReferenceGroup]
) -> None:
    """Summarize the evaluation dialogues with one model and write ``predictions/<name>.jsonl``."""
    model, tokenizer = load_for_generation(config, entry, paths)
    dialogues = [group.dialogue for group in groups]
    summaries = summarize(model, tokenizer, dialogues, config.generation, resolve_template(config.prompt))
    if is_main_process():
        predictions = PredictionSet.from_groups(groups, entry.name, summaries)
        write_predictions(paths.predictions / f"{entry.name}.jsonl", predictions)
    del model
    gc.collect()


def training_run(entry: ModelEntry, paths: ExperimentPaths) -> RunPaths | None:
    """The sumlab run directory a model was trained in, or None.

    A trained model's is its own (``runs/<name>``); a pretrained model's is its path when that is a run
    directory (it holds ``config.yaml`` and ``summary.json``) or the ``model/`` directory inside one.
    """
    if entry.kind == "train":
        candidates = [paths.run(entry.name)]
    elif entry.kind == "pretrained":
        path = Path(entry.path)
        candidates = [RunPaths(path)] + ([RunPaths(path.parent)] if path.name == "model" else [])
    else:
        candidates = []
    return next((run for run in candidates if run.summary.is_file() and run.config.is_file()), None)


def model_info(config: ExperimentConfig, entry: ModelEntry, paths: ExperimentPaths) -> ModelInfo:
    """Kind, method, label and base model of one model; its cost and training log when it comes from a run."""
    run = training_run(entry, paths)
    summary = read_run_summary(run.summary) if run else None
    return ModelInfo(
        kind=entry.kind,
        method=entry.method or (summary.method if summary else None),
        label=entry.label or entry.name,
        base_model=_describe_base(config.base_model(entry)),
        cost=summary.cost() if summary else None,
        log=read_log(run.log) if run else [],
    )


def experiment_setup(config: ExperimentConfig, groups: list[ReferenceGroup], paths: ExperimentPaths) -> Setup:
    """The report's setup section: model, data, prompt, generation, versions, hardware and time."""
    import peft
    import transformers

    import sumlab

    stage_seconds = [json.loads(p.read_text(encoding="utf-8"))["seconds"] for p in paths.stages.glob("*.json")]
    references = sum(len(g.references) for g in groups)
    return Setup(
        base_model=", ".join(dict.fromkeys(_describe_base(config.base_model(entry)) for entry in config.models)),
        dataset=config.data.source,
        splits={which: _selection_size(config, which) for which in ("train", "validation")},
        eval=EvalSetup(
            split=config.data.test.split,
            dialogues=len(groups),
            references_per_dialogue=round(references / max(len(groups), 1), 2),
            aggregate=config.eval.aggregate,
        ),
        prompt=resolve_template(config.prompt),
        generation=config.generation.model_dump(mode="json"),
        versions={
            "sumlab": sumlab.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
        },
        hardware=Hardware(
            device="cuda" if torch.cuda.is_available() else "cpu",
            cpu_count=os.cpu_count(),
            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        ),
        wall_seconds=round(sum(stage_seconds), 1),
    )


def _describe_base(model: ModelConfig) -> str:
    return model.name_or_path + (" (random init)" if model.random_init else "")


def _selection_size(config: ExperimentConfig, which: str) -> int | None:
    from sumlab.data.loading import load_selection

    if getattr(config.data, which) is None or not any(m.kind == "train" for m in config.models):
        return None
    return len(load_selection(config.data, which))


def run_experiment(
    config: ExperimentConfig, *, out_dir: str | Path | None = None, overwrite: bool = False
) -> tuple[Path, Results]:
    """Run (or continue) the experiment and write results.json, the report and the lab CSV.

    Returns:
        The experiment directory and the results document.
    """
    root = Path(out_dir or config.output_dir or Path("experiments") / config.name)
    config.check_paths()  # a typo in a path fails now, not after hours of training the others
    check_engine_ready(config.generation)  # so does a missing ctranslate2, or float16 on a CPU
    check_experiment_dir(root, to_yaml(config), overwrite)
    groups = evaluation_groups(config)  # a broken test file fails before the directory is made
    paths = run_on_main(prepare_experiment_dir, root, to_yaml(config), overwrite)  # the others wait for it
    stages = [
        (f"train-{entry.name}", lambda entry=entry: train_model(config, entry, paths))
        for entry in config.models
        if entry.kind == "train"
    ]
    stages += [
        (f"generate-{entry.name}", lambda entry=entry: generate_predictions(config, entry, paths, groups))
        for entry in config.models
    ]
    for place, (stage, action) in enumerate(stages, start=1):
        run_stage(paths, stage, action, place=(place, len(stages)))
    results = run_on_main(analyse, config, paths, groups)  # scored once, by rank 0
    return paths.root, results


def analyse(config: ExperimentConfig, paths: ExperimentPaths, groups: list[ReferenceGroup]) -> Results:
    """Score, test and report from the cached predictions (cheap, so always redone)."""
    sets = [read_predictions(paths.predictions / f"{entry.name}.jsonl") for entry in config.models]
    return report_predictions(
        merge_prediction_sets(sets),
        config.eval,
        paths.root,
        name=config.name,
        setup=experiment_setup(config, groups, paths),
        models_info={entry.name: model_info(config, entry, paths) for entry in config.models},
        created=_now(),
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
