"""Tests for sumlab.evaluation.predictions and .scoring: prediction files, tables, multi-reference scoring."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sumlab.config import EvalSettings
from sumlab.data.loading import ReferenceGroup
from sumlab.errors import SumlabError
from sumlab.evaluation.predictions import (
    PredictionSet,
    read_predictions,
    read_table,
    write_predictions,
)
from sumlab.evaluation.rouge import ROUGE_KEYS
from sumlab.evaluation.scoring import score_models, scores_table, scores_to_json

LAB_COLUMNS = ["original_model_summaries", "instruct_model_summaries", "peft_model_summaries"]


def sample_set() -> PredictionSet:
    return PredictionSet(
        ids=["test_0", "test_1"],
        references=[["Amy greets Bob.", "They say hello.", "Bob meets Amy."], ["Tom leaves — ünïcode “quotes”."]],
        predictions={"base": ["Amy says hi.", "Tom goes."], "lora-r32": ["Amy greets Bob.", "Tom leaves."]},
        dialogues=["#Person1#: hi\n#Person2#: hello", '#Person1#: bye, "friend"'],
    )


def write_lines(path: Path, rows: list[dict | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def row(id_: str, **predictions: str) -> dict:
    return {"id": id_, "references": ["a reference"], "predictions": predictions}


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(SumlabError) as info:
        call(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- prediction files


def test_write_then_read_round_trips(tmp_path):
    original = sample_set()
    path = tmp_path / "predictions.jsonl"
    write_predictions(path, original)
    assert read_predictions(path) == original
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["predictions"] == {"base": "Amy says hi.", "lora-r32": "Amy greets Bob."}
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]  # no temporary file left behind


LINE_BREAKING = "\u2028\u2029\u0085"  # str.splitlines() breaks at each; JSON holds them unescaped


def test_texts_with_unicode_line_separators_round_trip(tmp_path):
    original = PredictionSet(
        ids=["test_0", "test_1"],
        references=[[f"Amy{LINE_BREAKING}greets Bob."], ["Tom\u2028leaves.", "Tom goes\u0085away."]],
        predictions={"m": [f"Amy says hi{LINE_BREAKING}", "Tom\u2029goes."]},
        dialogues=["#Person1#: hi\u2028#Person2#: hello", "#Person1#: bye\u0085"],
    )
    path = tmp_path / "predictions.jsonl"
    write_predictions(path, original)
    text = path.read_text(encoding="utf-8")
    assert all(char in text for char in LINE_BREAKING)  # written unescaped, as json.dumps(ensure_ascii=False) does
    assert len(text.splitlines()) > 2  # which is why lines must end at \n only
    assert read_predictions(path) == original


def test_a_predictions_file_or_table_with_a_byte_order_mark_reads_as_without(tmp_path, lab_csv):
    plain = tmp_path / "predictions.jsonl"
    write_predictions(plain, sample_set())
    with_bom = tmp_path / "bom.jsonl"
    with_bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert read_predictions(with_bom) == sample_set()

    csv_with_bom = tmp_path / "lab-bom.csv"
    csv_with_bom.write_bytes(b"\xef\xbb\xbf" + lab_csv.read_bytes())
    assert read_table(csv_with_bom, "human_baseline_summaries", LAB_COLUMNS) == read_table(
        lab_csv, "human_baseline_summaries", LAB_COLUMNS
    )
    table = write_lines(tmp_path / "t.jsonl", [{"ref": "r1", "a": "p1"}])
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())
    assert read_table(table, "ref", ["a"]).references == [["r1"]]


@pytest.mark.parametrize(
    ("predictions", "says"),
    [({"m": None}, "is null, not a string"), ({"m": 3}, "is a number"), ({"m": ["x"]}, "is an array")],
)
def test_a_summary_that_is_not_text_is_refused(tmp_path, predictions, says):
    path = write_lines(
        tmp_path / "p.jsonl", [row("a", m="x"), {"id": "b", "references": ["r"], "predictions": predictions}]
    )
    message = error_of(read_predictions, path)
    assert f"{path}:2: the prediction of model 'm' {says}" in message


def test_a_reference_that_is_not_text_is_refused(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [{"id": "a", "references": ["r", None], "predictions": {"m": "x"}}])
    assert f"{path}:1: a reference is not a string" in error_of(read_predictions, path)


def test_reading_accepts_a_single_reference_string_and_blank_lines(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [{"id": 7, "references": "only one", "predictions": {"m": "x"}}, ""])
    loaded = read_predictions(path)
    assert loaded.ids == ["7"]
    assert loaded.references == [["only one"]]


def test_missing_keys_give_file_and_line(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [row("a", m="x"), "", {"id": "b", "predictions": {"m": "y"}}])
    message = error_of(read_predictions, path)
    assert f"{path}:3:" in message
    assert "references" in message


def test_malformed_json_gives_file_and_line(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [row("a", m="x"), "{not json"])
    assert f"{path}:2: malformed JSON" in error_of(read_predictions, path)


def test_model_missing_on_a_later_line_is_named_with_the_line(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [row("a", m1="x", m2="y"), row("b", m1="z")])
    message = error_of(read_predictions, path)
    assert f"{path}:2:" in message
    assert "'m2'" in message


def test_model_missing_on_an_earlier_line_is_named_with_that_line(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [row("a", m1="x"), row("b", m1="z", m2="y")])
    message = error_of(read_predictions, path)
    assert f"{path}:1:" in message
    assert "'m2'" in message


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "a", "references": [], "predictions": {"m": "x"}},
        {"id": "a", "references": ["r"], "predictions": "x"},
        {"id": "a", "references": 3, "predictions": {"m": "x"}},
    ],
)
def test_bad_shapes_are_refused(tmp_path, bad):
    path = write_lines(tmp_path / "p.jsonl", [bad])
    assert f"{path}:1:" in error_of(read_predictions, path)


def test_files_without_predictions_are_refused(tmp_path):
    assert "no predictions" in error_of(read_predictions, write_lines(tmp_path / "empty.jsonl", []))
    no_models = write_lines(tmp_path / "no-models.jsonl", [{"id": "a", "references": ["r"], "predictions": {}}])
    assert "no predictions" in error_of(read_predictions, no_models)
    assert "file not found" in error_of(read_predictions, tmp_path / "missing.jsonl")


def test_a_prediction_set_from_reference_groups_keeps_their_order_and_every_reference(tmp_path):
    groups = [
        ReferenceGroup("test_0", "#Person1#: hi", ("Amy greets Bob.", "They say hello.")),
        ReferenceGroup("test_1", "#Person1#: bye", ("Tom leaves.",)),
    ]
    made = PredictionSet.from_groups(groups, "lora", ["Amy says hi.", "Tom goes."])
    assert made == PredictionSet(
        ids=["test_0", "test_1"],
        references=[["Amy greets Bob.", "They say hello."], ["Tom leaves."]],
        predictions={"lora": ["Amy says hi.", "Tom goes."]},
        dialogues=["#Person1#: hi", "#Person1#: bye"],
    )
    write_predictions(tmp_path / "p.jsonl", made)
    assert read_predictions(tmp_path / "p.jsonl") == made
    assert "1 summaries for 2 dialogues" in error_of(PredictionSet.from_groups, groups, "lora", ["one"])


def test_prediction_set_needs_one_summary_per_dialogue():
    message = error_of(PredictionSet, ids=["a", "b"], references=[["r"], ["s"]], predictions={"m": ["only one"]})
    assert "'m' has 1 summaries for 2 dialogues" in message


# ---------------------------------------------------------------- tables


def test_read_table_on_the_lab_csv(lab_csv):
    table = read_table(lab_csv, "human_baseline_summaries", LAB_COLUMNS)
    with lab_csv.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert len(table.ids) == len(records) == 1500
    assert table.models == LAB_COLUMNS
    assert all(len(refs) == 1 for refs in table.references)
    assert table.references[0] == [records[0]["human_baseline_summaries"]]
    assert table.predictions["peft_model_summaries"][-1] == records[-1]["peft_model_summaries"]
    assert len(set(table.ids)) == len(table.ids)


def test_read_table_from_jsonl(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"id": "x", "ref": "r1", "a": "p1"}, {"id": "y", "ref": "r2", "a": None}])
    table = read_table(path, "ref", ["a"])
    assert table.ids == ["x", "y"]
    assert table.predictions == {"a": ["p1", ""]}


def test_missing_table_columns_list_the_files_columns(lab_csv):
    message = error_of(read_table, lab_csv, "human_baseline_summaries", ["original_model_summaries", "nope"])
    assert "no column(s) nope" in message
    for column in ["human_baseline_summaries", *LAB_COLUMNS]:
        assert column in message


def test_table_needs_a_prediction_column(lab_csv):
    assert "no prediction columns" in error_of(read_table, lab_csv, "human_baseline_summaries", [])


# ---------------------------------------------------------------- scoring


def test_multi_reference_scoring_takes_the_best_reference():
    predictions = PredictionSet(
        ids=["d"],
        references=[["completely unrelated words here", "the cat sat on the mat"]],
        predictions={"m": ["the cat sat on the mat"]},
    )
    best = score_models(predictions, EvalSettings(aggregate="max"))["m"]
    averaged = score_models(predictions, EvalSettings(aggregate="mean"))["m"]
    for key in ROUGE_KEYS:
        assert best.summary[key].mean == pytest.approx(1.0)
        assert averaged.summary[key].mean == pytest.approx(0.5)  # (1.0 + 0.0) / 2


def test_scores_json_has_each_model_and_metric_with_mean_and_ci():
    scores = score_models(sample_set(), EvalSettings(seed=3))
    data = scores_to_json(scores)
    assert list(data) == ["base", "lora-r32"]
    for metrics in data.values():
        assert list(metrics) == list(ROUGE_KEYS)
        for summary in metrics.values():
            assert set(summary) == {"mean", "ci95"}
            low, high = summary["ci95"]
            assert low <= summary["mean"] <= high
    json.dumps(data)  # plain JSON types only
    assert data["lora-r32"]["rouge1"]["mean"] > data["base"]["rouge1"]["mean"]
    assert scores_to_json(score_models(sample_set(), EvalSettings(seed=3))) == data  # seeded: reproducible


def test_scores_table_has_four_rows_per_model():
    table = scores_table(score_models(sample_set(), EvalSettings()))
    assert table.row_count == 4 * 2
    assert [column.header for column in table.columns][-1] == "Δ pts"
    assert table.caption == "Δ pts: absolute improvement over base, in ROUGE points"
    assert list(table.columns[-1].cells)[:4] == [""] * 4  # the baseline has no improvement over itself
    assert all(cell.startswith("+") for cell in list(table.columns[-1].cells)[4:])


def test_scores_table_of_one_model_has_no_improvement_column():
    single = PredictionSet(
        ids=sample_set().ids, references=sample_set().references, predictions={"base": sample_set().predictions["base"]}
    )
    table = scores_table(score_models(single, EvalSettings()))
    assert [column.header for column in table.columns] == ["model", "metric", "score", "95% CI"]
    assert table.caption is None and table.row_count == 4
