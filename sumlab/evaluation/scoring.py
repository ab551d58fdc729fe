"""Score every model of a prediction set, and show the scores as the lab does (plus CIs)."""

from __future__ import annotations

from rich.table import Table

from sumlab.config import EvalSettings
from sumlab.evaluation.predictions import PredictionSet
from sumlab.evaluation.rouge import (
    ROUGE_KEYS,
    ModelScores,
    improvement,
    score_predictions,
)
from sumlab.evaluation.schema import MetricScore


def score_models(predictions: PredictionSet, settings: EvalSettings) -> dict[str, ModelScores]:
    """ROUGE of every model against all references of each dialogue, with CIs from ``settings.bootstrap_samples``.

    ``settings.aggregate`` combines several references (best or mean); ``settings.seed`` seeds the bootstrap.
    """
    return {
        name: score_predictions(
            summaries,
            predictions.references,
            aggregate=settings.aggregate,
            samples=settings.bootstrap_samples,
            seed=settings.seed,
        )
        for name, summaries in predictions.predictions.items()
    }


def metric_scores(scores: ModelScores) -> dict[str, MetricScore]:
    """One model's mean and 95% CI per metric, as the results document holds them."""
    return {key: MetricScore(mean=summary.mean, ci95=summary.ci95) for key, summary in scores.summary.items()}


def scores_to_json(scores: dict[str, ModelScores]) -> dict:
    """``{model: {metric: {"mean": x, "ci95": [lo, hi]}}}``."""
    return {
        name: {key: score.model_dump(mode="json") for key, score in metric_scores(model_scores).items()}
        for name, model_scores in scores.items()
    }


def scores_table(scores: dict[str, ModelScores], title: str = "ROUGE (mean, 95% bootstrap CI)") -> Table:
    """A table of each model's scores with CIs and, with several models, its improvement over the first in points."""
    baseline_name = next(iter(scores))
    baseline = scores[baseline_name].summary
    compared = len(scores) > 1  # a single model has nothing to improve on
    table = Table(title=title)
    table.add_column("model", no_wrap=True)
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("95% CI", justify="right", no_wrap=True)
    if compared:
        table.add_column("Δ pts", justify="right")
    for name, model_scores in scores.items():
        gains = improvement(model_scores.summary, baseline)
        for position, key in enumerate(ROUGE_KEYS):
            summary = model_scores.summary[key]
            cells = [
                name if position == 0 else "",
                key,
                f"{summary.mean:.4f}",
                f"[{summary.ci95[0]:.4f}, {summary.ci95[1]:.4f}]",
            ]
            if compared:
                cells.append("" if name == baseline_name else f"{gains[key]:+.2f}")
            table.add_row(*cells, end_section=position == len(ROUGE_KEYS) - 1)
    if compared:
        table.caption = f"Δ pts: absolute improvement over {baseline_name}, in ROUGE points"
    return table
