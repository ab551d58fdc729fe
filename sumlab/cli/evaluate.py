"""``sumlab evaluate``: ROUGE with confidence intervals for a predictions file or a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sumlab.cli.options import console
from sumlab.errors import SumlabError


def evaluate(
    file: Annotated[
        Path, typer.Argument(help="a predictions file, or a CSV/JSONL table with --references/--predictions")
    ],
    references: Annotated[Optional[str], typer.Option("--references", help="table column with the reference")] = None,
    predictions: Annotated[Optional[str], typer.Option("--predictions", help="table columns, comma-separated")] = None,
    aggregate: Annotated[str, typer.Option("--aggregate", help="multi-reference: max or mean")] = "max",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the scores as JSON")] = None,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 0,
) -> None:
    """Score summaries with ROUGE (95% CIs) and show each model's improvement over the first."""
    from sumlab.config import EvalSettings
    from sumlab.evaluation.predictions import read_predictions, read_table
    from sumlab.evaluation.scoring import score_models, scores_table, scores_to_json
    from sumlab.runtime.fileio import write_json_atomic

    if aggregate not in ("max", "mean"):
        raise SumlabError(f"unknown --aggregate {aggregate!r}", "use max or mean")
    if (references is None) != (predictions is None):
        raise SumlabError(
            "--references and --predictions go together", "give both for a table, neither for a predictions file"
        )
    if references is not None:
        columns = [column.strip() for column in predictions.split(",") if column.strip()]
        prediction_set = read_table(file, references, columns)
    else:
        prediction_set = read_predictions(file)
    scores = score_models(prediction_set, EvalSettings(aggregate=aggregate, seed=seed))
    console.print(scores_table(scores))
    if json_out is not None:
        write_json_atomic(json_out, scores_to_json(scores))
        console.print(f"wrote {json_out}")
