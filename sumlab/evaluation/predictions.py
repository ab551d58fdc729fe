"""Prediction files: one JSON object per dialogue with its references and each model's summary.

A predictions file (``sumlab generate``) has, per line::

    {"id": ..., "dialogue": ..., "references": [...], "predictions": {"model name": "summary", ...}}

A table (CSV or JSONL, like the lab's results CSV) has one reference column and prediction columns.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sumlab.data.loading import read_text_file
from sumlab.errors import SumlabError
from sumlab.runtime.fileio import write_jsonl_atomic

if TYPE_CHECKING:
    from sumlab.data.loading import ReferenceGroup

REQUIRED_KEYS = ("id", "references", "predictions")
EVERY_MODEL = "every line needs every model"


@dataclass
class PredictionSet:
    """Dialogues, their references, and each model's summaries, all in the same order."""

    ids: list[str]
    references: list[list[str]]
    predictions: dict[str, list[str]]
    dialogues: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, summaries in self.predictions.items():
            if len(summaries) != len(self.ids):
                raise SumlabError(
                    f"model {name!r} has {len(summaries)} summaries for {len(self.ids)} dialogues",
                    "every model needs one summary per dialogue",
                )

    @classmethod
    def from_groups(cls, groups: Sequence[ReferenceGroup], model: str, summaries: Sequence[str]) -> PredictionSet:
        """One model's summaries of ``groups`` (dialogues with all their references), in the groups' order."""
        return cls(
            ids=[group.id for group in groups],
            references=[list(group.references) for group in groups],
            predictions={model: list(summaries)},
            dialogues=[group.dialogue for group in groups],
        )

    @property
    def models(self) -> list[str]:
        return list(self.predictions)

    def to_rows(self) -> list[dict]:
        """One predictions-file object per dialogue."""
        dialogues = self.dialogues or [""] * len(self.ids)
        return [
            {
                "id": self.ids[i],
                "dialogue": dialogues[i],
                "references": self.references[i],
                "predictions": {name: summaries[i] for name, summaries in self.predictions.items()},
            }
            for i in range(len(self.ids))
        ]


def write_predictions(path: str | Path, predictions: PredictionSet) -> None:
    """Write ``predictions`` as a predictions file, atomically."""
    write_jsonl_atomic(path, predictions.to_rows())


def read_predictions(path: str | Path) -> PredictionSet:
    """Read a predictions file written by ``sumlab generate`` (or ``write_predictions``).

    Raises:
        SumlabError: naming the file and line of the first record that is malformed, lacks a key or a model,
            or holds a reference or summary that is not text.
    """
    rows = _read_jsonl_objects(Path(path))
    ids, dialogues, references, predictions = [], [], [], {}
    for line_number, row in rows:
        where = f"{path}:{line_number}"
        refs, summaries = _record_texts(row, where)
        new_models = sorted(summaries.keys() - predictions.keys()) if ids else []
        if new_models:  # a model that the earlier lines lack
            raise SumlabError(f"{path}:{rows[0][0]}: no prediction for model {new_models[0]!r}", EVERY_MODEL)
        lacking = sorted(predictions.keys() - summaries.keys())
        if lacking:
            raise SumlabError(f"{where}: no prediction for model {lacking[0]!r}", EVERY_MODEL)
        ids.append(str(row["id"]))
        dialogues.append(str(row.get("dialogue", "")))
        references.append(refs)
        for name, summary in summaries.items():
            predictions.setdefault(name, []).append(summary)
    if not ids or not predictions:
        raise SumlabError(f"{path} holds no predictions", "generate some with `sumlab generate`")
    return PredictionSet(ids=ids, references=references, predictions=predictions, dialogues=dialogues)


def _record_texts(row: dict, where: str) -> tuple[list[str], dict[str, str]]:
    """The references and the summaries by model of one predictions-file record, checked."""
    missing = [key for key in REQUIRED_KEYS if key not in row]
    if missing:
        raise SumlabError(
            f"{where}: missing key(s) {', '.join(missing)}",
            "a predictions file has id, references and predictions on every line; "
            "for a table, pass --references COL --predictions COL1,COL2",
        )
    refs = [row["references"]] if isinstance(row["references"], str) else row["references"]
    summaries = row["predictions"]
    if not isinstance(refs, list) or not refs or not isinstance(summaries, dict):
        raise SumlabError(
            f"{where}: references must be a non-empty list and predictions an object",
            "see `sumlab generate --help` for the format",
        )
    if not all(isinstance(ref, str) for ref in refs):
        raise SumlabError(f"{where}: a reference is not a string", "write each reference as JSON text")
    not_text = next((name for name, summary in summaries.items() if not isinstance(summary, str)), None)
    if not_text is not None:
        raise SumlabError(
            f"{where}: the prediction of model {not_text!r} is {_json_kind(summaries[not_text])}, not a string",
            'write each summary as JSON text; an empty summary is ""',
        )
    return refs, summaries


def _json_kind(value) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}
    return kinds.get(type(value), "null")


def read_table(path: str | Path, reference_column: str, prediction_columns: Sequence[str]) -> PredictionSet:
    """Read a CSV or JSONL table with one reference column and one column per model."""
    file = Path(path)
    if not prediction_columns:
        raise SumlabError("no prediction columns given", "name at least one, e.g. --predictions COL1,COL2")
    records = (
        _read_csv_records(file) if file.suffix.lower() == ".csv" else [row for _, row in _read_jsonl_objects(file)]
    )
    if not records:
        raise SumlabError(f"{file} has no rows", "check the file")
    wanted = [reference_column, *prediction_columns]
    missing = [column for column in wanted if column not in records[0]]
    if missing:
        raise SumlabError(
            f"{file}: no column(s) {', '.join(missing)}",
            f"the file has: {', '.join(str(c) for c in records[0])}",
        )
    ids = [str(row.get("id", index)) for index, row in enumerate(records)]
    return PredictionSet(
        ids=ids,
        references=[[_cell(row[reference_column])] for row in records],
        predictions={column: [_cell(row[column]) for row in records] for column in prediction_columns},
        dialogues=[_cell(row.get("dialogue", "")) for row in records],
    )


def _cell(value) -> str:
    return "" if value is None else str(value)


def _read_csv_records(file: Path) -> list[dict]:
    _check_exists(file)
    try:
        return list(csv.DictReader(io.StringIO(read_text_file(file), newline="")))
    except csv.Error as exc:
        raise SumlabError(f"{file}: malformed CSV: {exc}", "check quoting in the file") from None


def _read_jsonl_objects(file: Path) -> list[tuple[int, dict]]:
    """The file's JSON objects with their line numbers, blank lines skipped.

    Lines end at ``\n`` only: ``str.splitlines()`` would also cut at U+2028, U+2029 or U+0085, which JSON
    allows unescaped inside a string (and ``sumlab generate`` writes so).
    """
    _check_exists(file)
    rows = []
    for number, line in enumerate(read_text_file(file).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SumlabError(
                f"{file}:{number}: malformed JSON: {exc.msg}", "each line must be one JSON object"
            ) from None
        if not isinstance(row, dict):
            raise SumlabError(f"{file}:{number}: expected a JSON object", "each line must be one JSON object")
        rows.append((number, row))
    return rows


def _check_exists(file: Path) -> None:
    if not file.is_file():
        raise SumlabError(f"file not found: {file}", "check the path")


def merge_prediction_sets(sets: Sequence[PredictionSet]) -> PredictionSet:
    """One set with every model of ``sets``, which must cover the same dialogues in the same order."""
    if not sets:
        raise SumlabError("no predictions to merge", "give at least one predictions file")
    first = sets[0]
    merged: dict[str, list[str]] = {}
    for other in sets:
        if other.ids != first.ids:
            raise SumlabError(
                "the prediction sets cover different dialogues",
                "generate every model's predictions on the same split, limit and order",
            )
        for name, summaries in other.predictions.items():
            if name in merged:
                raise SumlabError(f"model {name!r} appears in more than one input", "rename one of them with --name")
            merged[name] = summaries
    return PredictionSet(ids=first.ids, references=first.references, predictions=merged, dialogues=first.dialogues)
