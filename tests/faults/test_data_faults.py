"""Fault suite, data files: malformed JSONL/JSON/CSV/Parquet, missing columns, empty files, bytes that are not
UTF-8, predictions files with bad records. Each is refused in one line naming the file (and line) and the fix,
exit code 2, nothing written; a byte order mark is no fault at all."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from refusals import assert_says, run_refused

ROW = {"id": "a", "dialogue": "#Person1#: hi\n#Person2#: hello", "summary": "They greet."}
GOOD_LINE = json.dumps(ROW)
RECORD = {"id": "a", "references": ["They greet."], "predictions": {"m": "Hi.", "n": "Hello."}}


def jsonl(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


@dataclass(frozen=True)
class Case:
    file: str  # written into the work directory
    content: bytes
    says: tuple[str, ...]  # the error line holds each of these ({file}: the file's name)


DATA_CASES = {
    "jsonl-malformed-line": Case(
        "data.jsonl", jsonl(GOOD_LINE, '{"id": "b", "dialogue": '), ("data.jsonl:2: invalid JSON",)
    ),
    "jsonl-python-dict-literal": Case(
        "data.jsonl", jsonl(GOOD_LINE, str(ROW)), ("data.jsonl:2: looks like a Python dict literal", "json.dumps")
    ),
    "jsonl-line-not-an-object": Case(
        "data.jsonl", jsonl(GOOD_LINE, '["a", "b"]'), ("data.jsonl:2: expected a JSON object, got an array",)
    ),
    "json-array-item-not-an-object": Case(
        "data.json", json.dumps([ROW, "text"]).encode(), ("data.json: item 1 of the array is not an object",)
    ),
    "json-array-malformed": Case("data.json", b'[{"id": "a",\n "dialogue": }]', ("data.json:2: invalid JSON",)),
    "csv-row-with-extra-cells": Case(
        "data.csv", b"id,dialogue,summary\na,hi,greets\nb,hi, there,greets\n", ("data.csv:3: 4 cells", "quote cells")
    ),
    "csv-unterminated-quote": Case(
        "data.csv", b'id,dialogue,summary\na,"hi, there,greets\n', ("data.csv:2: 2 cells, but the header has 3",)
    ),
    "missing-dialogue-column": Case(
        "data.jsonl",
        jsonl(json.dumps({"id": "a", "text": "hi", "summary": "s"})),
        ("no column 'dialogue' for the dialogue; its columns are: id, text, summary", "data.columns.dialogue"),
    ),
    "empty-file": Case("data.jsonl", b"", ("data.jsonl: no rows",)),
    "empty-dialogue-cell": Case(
        "data.csv",
        b"id,dialogue,summary\na,hi,greets\nb,,greets\n",
        ("1 row has an empty dialogue", "ids b", "lines 3"),
    ),
    "latin-1-bytes": Case(
        "data.jsonl",
        jsonl(GOOD_LINE) + '{"dialogue": "café"}\n'.encode("latin-1"),
        ("data.jsonl:2: not UTF-8 (byte 0xe9",),
    ),
    "latin-1-bytes-after-a-bom": Case(
        "data.csv", b"\xef\xbb\xbfid,dialogue,summary\na,caf\xe9,s\n", ("data.csv:2: not UTF-8", "byte offset 28")
    ),
    "unsupported-file-type": Case("data.txt", b"#Person1#: hi\n", ("unsupported data file type", ".jsonl, .json")),
    "parquet-that-is-not-parquet": Case("data.parquet", b"PAR1 but not really", ("could not read Parquet file",)),
}


@pytest.mark.parametrize("name", list(DATA_CASES))
def test_a_bad_data_file_is_refused_by_generate(name, tmp_path, tiny_model_dir, monkeypatch, capsys):
    case = DATA_CASES[name]
    (tmp_path / case.file).write_bytes(case.content)
    args = ["generate", "--data", case.file, "--model", tiny_model_dir, "--split", "test", "--out", "out.jsonl"]
    assert_says(run_refused(args, tmp_path, monkeypatch, capsys), *case.says)


def refuse_to_load_a_tokenizer(*args, **kwargs):
    raise AssertionError("data audit loaded a tokenizer before it read the data")


@pytest.mark.parametrize("name", ["jsonl-malformed-line", "missing-dialogue-column", "latin-1-bytes", "empty-file"])
def test_data_audit_reads_the_data_before_any_tokenizer(name, tmp_path, monkeypatch, capsys):
    """Offline, with the default hub model, a broken file gets its own error (the tokenizer would fail too)."""
    import sumlab.models.loading

    monkeypatch.setattr(sumlab.models.loading, "load_tokenizer", refuse_to_load_a_tokenizer)
    case = DATA_CASES[name]
    (tmp_path / case.file).write_bytes(case.content)
    args = ["data", "audit", "--data", case.file, "--splits", "train", "--json", "audit.json"]
    assert_says(run_refused(args, tmp_path, monkeypatch, capsys), *case.says)


def test_a_data_directory_without_the_split_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.jsonl").write_bytes(jsonl(GOOD_LINE))
    line = run_refused(["data", "audit", "--data", "corpus", "--splits", "test"], tmp_path, monkeypatch, capsys)
    assert_says(line, "no file for split 'test' in corpus; split files here: train.jsonl")


def test_a_missing_data_file_is_refused(tmp_path, monkeypatch, capsys):
    line = run_refused(["data", "audit", "--data", "nope.csv"], tmp_path, monkeypatch, capsys)
    assert_says(line, "data source not found: nope.csv")


# ---------------------------------------------------------------- predictions files and tables (evaluate)

PREDICTION_CASES = {
    "predictions-malformed-json": Case(
        "p.jsonl", jsonl(json.dumps(RECORD), '{"id": "b", "references": ['), ("p.jsonl:2: malformed JSON",)
    ),
    "predictions-missing-references": Case(
        "p.jsonl", jsonl(json.dumps({"id": "a", "predictions": {"m": "x"}})), ("p.jsonl:1: missing key(s) references",)
    ),
    "predictions-model-missing-on-a-line": Case(
        "p.jsonl",
        jsonl(json.dumps(RECORD), json.dumps({**RECORD, "id": "b", "predictions": {"m": "x"}})),
        ("p.jsonl:2: no prediction for model 'n'", "every line needs every model"),
    ),
    "predictions-null-summary": Case(
        "p.jsonl",
        jsonl(json.dumps({**RECORD, "predictions": {"m": None, "n": "x"}})),
        ("p.jsonl:1: the prediction of model 'm' is null, not a string",),
    ),
    "predictions-empty-references": Case(
        "p.jsonl", jsonl(json.dumps({**RECORD, "references": []})), ("p.jsonl:1: references must be a non-empty list",)
    ),
    "predictions-file-empty": Case("p.jsonl", b"\n\n", ("p.jsonl holds no predictions", "sumlab generate")),
    "predictions-not-utf-8": Case(
        "p.jsonl",
        json.dumps(RECORD, ensure_ascii=False).replace("Hi.", "Olé.").encode("cp1252") + b"\n",
        ("not UTF-8",),
    ),
}


@pytest.mark.parametrize("name", list(PREDICTION_CASES))
def test_a_bad_predictions_file_is_refused_by_evaluate(name, tmp_path, monkeypatch, capsys):
    case = PREDICTION_CASES[name]
    (tmp_path / case.file).write_bytes(case.content)
    line = run_refused(["evaluate", case.file, "--json", "scores.json"], tmp_path, monkeypatch, capsys)
    assert_says(line, *case.says)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"ref,model\n", ("t.csv has no rows",)),
        (b"reference,model\nr,p\n", ("t.csv: no column(s) ref", "the file has: reference, model")),
    ],
    ids=["table-without-rows", "table-missing-reference-column"],
)
def test_a_bad_table_is_refused_by_evaluate(content, says, tmp_path, monkeypatch, capsys):
    (tmp_path / "t.csv").write_bytes(content)
    args = ["evaluate", "t.csv", "--references", "ref", "--predictions", "model", "--json", "scores.json"]
    assert_says(run_refused(args, tmp_path, monkeypatch, capsys), *says)


# ---------------------------------------------------------------- a byte order mark is no fault


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_table_with_a_byte_order_mark_scores_as_without(suffix, tmp_path):
    """The reproduction of #13: evaluate said the (first) column was missing while naming it."""
    from typer.testing import CliRunner

    from sumlab.cli.app import app

    rows = [{"ref": f"Amy greets Bob {i}.", "model": f"Amy says hi {i}."} for i in range(4)]
    if suffix == ".csv":
        text = "ref,model\n" + "".join(f"{row['ref']},{row['model']}\n" for row in rows)
    else:
        text = "".join(json.dumps(row) + "\n" for row in rows)
    scores = {}
    for name, prefix in (("plain", b""), ("bom", b"\xef\xbb\xbf")):
        table = tmp_path / f"{name}{suffix}"
        table.write_bytes(prefix + text.encode("utf-8"))
        out = tmp_path / f"{name}.json"
        args = ["evaluate", str(table), "--references", "ref", "--predictions", "model", "--json", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, f"{result.exception!r}\n{result.output}"
        scores[name] = json.loads(out.read_text(encoding="utf-8"))
    assert scores["bom"] == scores["plain"]
    assert list(scores["bom"]) == ["model"]


def test_a_data_file_with_a_byte_order_mark_loads_as_without(tmp_path):
    from sumlab.data.loading import load_split

    for suffix, text in ((".csv", "id,dialogue,summary\na,hi,greets\n"), (".jsonl", GOOD_LINE + "\n")):
        (tmp_path / f"bom{suffix}").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        (tmp_path / f"plain{suffix}").write_text(text, encoding="utf-8")
        assert load_split(str(tmp_path / f"bom{suffix}"), "test") == load_split(
            str(tmp_path / f"plain{suffix}"), "test"
        )
        assert load_split(str(tmp_path / f"bom{suffix}"), "test")[0].id == "a"
