"""Turn predictions into the experiment's results: scores with CIs, paired tests, examples, lab CSV."""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from itertools import accumulate, combinations
from pathlib import Path

from sumlab.config import EvalSettings
from sumlab.evaluation.predictions import PredictionSet
from sumlab.evaluation.rouge import ROUGE_KEYS, ModelScores, improvement
from sumlab.evaluation.schema import (
    ExampleRow,
    ModelInfo,
    ModelResult,
    PairedTest,
    Results,
    Setup,
)
from sumlab.evaluation.scoring import metric_scores
from sumlab.evaluation.statistics import approximate_randomization, paired_bootstrap
from sumlab.runtime.fileio import write_text_atomic

LAB_COLUMNS = {
    "baseline": "original_model_summaries",
    "full": "instruct_model_summaries",
    "lora": "peft_model_summaries",
}
LAB_REFERENCE_COLUMN = "human_baseline_summaries"
LAB_CSV_NAME = "lab_results.csv"


def significance_table(scores: dict[str, ModelScores], settings: EvalSettings) -> list[PairedTest]:
    """A paired test for every pair of models and every metric, on per-example scores (delta = a - b)."""
    test = paired_bootstrap if settings.significance == "paired_bootstrap" else approximate_randomization
    rows = []
    for b, a in combinations(scores, 2):  # a comes later in the list: delta is a - b, e.g. lora - original
        for key in ROUGE_KEYS:
            result = test(
                scores[a].per_example[key],
                scores[b].per_example[key],
                samples=settings.significance_samples,
                seed=settings.seed,
            )
            rows.append(PairedTest(a=a, b=b, metric=key, **result.to_json()))
    return rows


def example_rows(predictions: PredictionSet, scores: dict[str, ModelScores]) -> list[ExampleRow]:
    """Each evaluated dialogue with its references, every model's summary and its per-example ROUGE."""
    rows = []
    for index, example_id in enumerate(predictions.ids):
        rows.append(
            ExampleRow(
                id=example_id,
                dialogue=predictions.dialogues[index] if predictions.dialogues else "",
                references=predictions.references[index],
                predictions={name: summaries[index] for name, summaries in predictions.predictions.items()},
                scores={
                    name: {key: round(float(model_scores.per_example[key][index]), 6) for key in ROUGE_KEYS}
                    for name, model_scores in scores.items()
                },
            )
        )
    return rows


def highlighted_ids(predictions: PredictionSet, positions: list[int]) -> list[str]:
    """Ids of the dialogues that hold rows ``positions`` of the split; out-of-range positions fall back to the first.

    Rows count one per reference, as the lab's ``dataset["test"][200]`` does: DialogSum's test split
    has three rows per dialogue, so its row 200 is dialogue ``test_66``.
    """
    first_rows = list(accumulate((len(refs) for refs in predictions.references), initial=0))
    chosen = [predictions.ids[bisect_right(first_rows, p) - 1] for p in positions if 0 <= p < first_rows[-1]]
    return list(dict.fromkeys(chosen)) or predictions.ids[:1]


def build_results(
    predictions: PredictionSet,
    scores: dict[str, ModelScores],
    settings: EvalSettings,
    *,
    name: str,
    setup: Setup,
    models_info: dict[str, ModelInfo],
    created: str | None = None,
) -> Results:
    """The results document that the report, ``results.json`` and ``sumlab compare`` share.

    Args:
        models_info: per model, what it is (kind, method, label, base model) and its cost and training log;
            a model without an entry is taken as a pretrained model with no more known about it.
        created: when the results were made (ISO 8601), or None to leave it out.
    """
    baseline = next(iter(scores))
    models = {}
    for model_name, model_scores in scores.items():
        info = models_info.get(model_name) or ModelInfo()
        gains = improvement(model_scores.summary, scores[baseline].summary)
        models[model_name] = ModelResult(
            kind=info.kind,
            method=info.method,
            label=info.label or model_name,
            base_model=info.base_model,
            scores=metric_scores(model_scores),
            improvement={key: round(value, 4) for key, value in gains.items()},
            cost=info.cost,
            log=info.log,
        )
    extra = {} if created is None else {"created": created}
    return Results(
        name=name,
        setup=setup,
        baseline=baseline,
        models=models,
        significance=significance_table(scores, settings),
        examples=example_rows(predictions, scores),
        highlight=highlighted_ids(predictions, settings.highlight),
        lab_csv=LAB_CSV_NAME,
        **extra,
    )


def lab_roles(methods: dict[str, str | None]) -> dict[str, str]:
    """Which model fills which column of the lab's CSV: the baseline, the first full and first LoRA model.

    Args:
        methods: each model's training method (None for an untrained one), in the results' order.
    """
    columns: dict[str, str] = {}
    names = list(methods)
    if names:
        columns[names[0]] = LAB_COLUMNS["baseline"]
    for role in ("full", "lora"):
        match = next((n for n in names[1:] if methods[n] == role and n not in columns), None)
        if match:
            columns[match] = LAB_COLUMNS[role]
    for other in names:
        if other not in columns:
            column, n = f"{other}_model_summaries", 2
            while column in columns.values():  # e.g. an extra model named "instruct" next to the first full one
                column, n = f"{other}_{n}_model_summaries", n + 1
            columns[other] = column
    return columns


def lab_csv_text(results: Results) -> str:
    """The lab's results CSV: one row per (dialogue, reference), an unnamed index, one column per model."""
    columns = lab_roles({name: model.method for name, model in results.models.items()})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", LAB_REFERENCE_COLUMN, *columns.values()])
    index = 0
    for example in results.examples:
        for reference in example.references:
            writer.writerow([index, reference, *(example.predictions[name] for name in columns)])
            index += 1
    return buffer.getvalue()


def write_lab_csv(results: Results, out_dir: Path) -> Path:
    """Write the lab-compatible CSV next to the report, as ``results.lab_csv`` names it."""
    path = Path(out_dir) / (results.lab_csv or LAB_CSV_NAME)
    write_text_atomic(path, lab_csv_text(results))
    return path
