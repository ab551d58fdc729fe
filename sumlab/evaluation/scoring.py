"""Score every model of a prediction set, and show the scores as the lab does (plus CIs)."""

from __future__ import annotations

from typing import Literal

from rich.table import Table

from sumlab.evaluation.predictions import PredictionSet
from sumlab.evaluation.rouge import (
    ROUGE_KEYS,
    ModelScores,
    improvement,
    score_predictions,
)


def score_prediction_set(
    predictions: PredictionSet, *, aggregate: Literal["max", "mean"] = "max", seed: int = 0
) -> dict[str, ModelScores]:
    """ROUGE of each model against all references of each dialogue."""
    return {
        name: score_predictions(summaries, predictions.references, aggregate=aggregate, seed=seed)
        for name, summaries in predictions.predictions.items()
    }


def scores_to_json(scores: dict[str, ModelScores]) -> dict:
    """``{model: {metric: {"mean": x, "ci95": [lo, hi]}}}``."""
    return {name: model_scores.to_json() for name, model_scores in scores.items()}


def scores_table(scores: dict[str, ModelScores], title: str = "ROUGE (mean, 95% bootstrap CI)") -> Table:
    """A table of each model's scores with CIs and its improvement over the first model, in points."""
    baseline_name = next(iter(scores))
    baseline = scores[baseline_name].summary
    table = Table(title=title)
    table.add_column("model", no_wrap=True)
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("Δ pts", justify="right")
    for name, model_scores in scores.items():
        gains = improvement(model_scores.summary, baseline)
        for position, key in enumerate(ROUGE_KEYS):
            summary = model_scores.summary[key]
            gain = "" if name == baseline_name else f"{gains[key]:+.2f}"
            table.add_row(
                name if position == 0 else "",
                key,
                f"{summary.mean:.4f}",
                f"[{summary.ci95[0]:.4f}, {summary.ci95[1]:.4f}]",
                gain,
                end_section=position == len(ROUGE_KEYS) - 1,
            )
    table.caption = f"Δ pts: absolute improvement over {baseline_name}, in ROUGE points"
    return table
