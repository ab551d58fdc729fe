"""Tests for sumlab.data: loading, column mapping, validation errors, grouping and subsampling."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sumlab.config import ColumnMap, DataConfig, SplitSelection
from sumlab.data.loading import (
    DialogueExample,
    ReferenceGroup,
    examples_to_dataset,
    group_references,
    load_selection,
    load_split,
    select_groups,
)
from sumlab.errors import SumlabError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

ROWS = [
    {"id": "a", "topic": "t1", "dialogue": "#Person1#: hi\n#Person2#: hello", "summary": "They greet."},
    {"id": "b", "topic": "t2", "dialogue": "#Person1#: bye", "summary": "One leaves."},
    {"id": "c", "topic": None, "dialogue": '#Person1#: ok, "quoted"', "summary": "Agreed."},
]


@pytest.fixture
def dialogsum() -> Path:
    """The shared DialogSum directory; real-data tests skip without it."""
    directory = SHARED_DATA / "dialogsum"
    if not directory.is_dir():
        pytest.skip(f"no shared data at {directory}")
    return directory


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def raises(match_all: list[str], call, *args, **kwargs) -> SumlabError:
    """Call and expect a SumlabError whose text contains every string in ``match_all``."""
    with pytest.raises(SumlabError) as info:
        call(*args, **kwargs)
    text = str(info.value)
    for needle in match_all:
        assert needle in text, f"{needle!r} not in {text!r}"
    assert info.value.hint
    return info.value


# ---------------------------------------------------------------- the real DialogSum files


def test_loads_dialogsum_train(dialogsum):
    examples = load_split(str(dialogsum), "train")
    assert len(examples) == 12460
    assert examples[0].id == "train_0"
    assert all(example.dialogue.strip() and example.summary.strip() for example in examples)
    assert isinstance(examples[0].topic, str)


def test_loads_dialogsum_validation_also_as_dev(dialogsum):
    validation = load_split(str(dialogsum), "validation")
    assert len(validation) == 500
    assert load_split(str(dialogsum), "dev") == validation


def test_dialogsum_test_groups_into_500_dialogues_of_3_references(dialogsum):
    examples = load_split(str(dialogsum), "test")
    groups = group_references(examples)
    assert len(examples) == 1500
    assert len(groups) == 500
    assert all(len(group.references) == 3 for group in groups)
    assert [groups[0].id, groups[-1].id] == ["test_0", "test_499"]
    assert list(groups[0].references) == [example.summary for example in examples[:3]]
    assert groups[0].dialogue == examples[0].dialogue and groups[0].topic == examples[0].topic


def test_single_file_is_every_split_and_equals_the_directory_split(dialogsum):
    from_directory = load_split(str(dialogsum), "test")
    from_file = load_split(str(dialogsum / "test.jsonl"), "test")
    assert from_file == from_directory
    assert load_split(str(dialogsum / "test.jsonl"), "train") == from_file


def test_every_nth_matches_the_lab_filter(dialogsum):
    examples = load_split(str(dialogsum), "train", every_nth=100)
    assert len(examples) == 125
    assert [example.id for example in examples[:3]] == ["train_0", "train_100", "train_200"]


# ---------------------------------------------------------------- formats, columns, splits


def test_directory_files_by_split_and_dev_alias_both_ways(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "dev.jsonl", ROWS[:1])
    assert [example.id for example in load_split(str(tmp_path), "train")] == ["a", "b", "c"]
    assert len(load_split(str(tmp_path), "validation")) == 1
    (tmp_path / "dev.jsonl").rename(tmp_path / "validation.jsonl")
    assert len(load_split(str(tmp_path), "dev")) == 1


def test_jsonl_fields_and_blank_lines(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n" + json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    examples = load_split(str(path), "train")
    assert examples == [
        DialogueExample("a", ROWS[0]["dialogue"], "They greet.", "t1"),
        DialogueExample("b", "#Person1#: bye", "One leaves.", "t2"),
    ]


def test_csv_with_quoted_commas_and_line_breaks(tmp_path):
    path = write_csv(tmp_path / "data.csv", ROWS)
    examples = load_split(str(path), "test")
    assert [example.dialogue for example in examples] == [row["dialogue"] for row in ROWS]
    assert examples[2].topic is None  # csv writes None as an empty cell


def test_parquet(tmp_path):
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert [example.id for example in load_split(str(tmp_path), "train")] == ["a", "b", "c"]


def test_json_array_file(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    assert [example.summary for example in load_split(str(path), "train")] == [row["summary"] for row in ROWS]


def test_column_map_renames_columns(tmp_path):
    rows = [{"uid": 7, "text": row["dialogue"], "label": row["summary"], "kind": "x"} for row in ROWS]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    columns = ColumnMap(dialogue="text", summary="label", id="uid", topic="kind")
    examples = load_split(str(path), "train", columns)
    assert examples[0] == DialogueExample("7", ROWS[0]["dialogue"], ROWS[0]["summary"], "x")


def test_missing_id_and_topic_columns_fall_back(tmp_path):
    rows = [{"dialogue": row["dialogue"], "summary": row["summary"]} for row in ROWS]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    examples = load_split(str(path), "dev")
    assert [example.id for example in examples] == ["validation_0", "validation_1", "validation_2"]
    assert all(example.topic is None for example in examples)
    assert load_split(str(tmp_path / "data.jsonl"), "test", ColumnMap(id=None))[1].id == "test_1"


def test_load_selection_uses_the_config(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [{**ROWS[0], "id": f"r{i}", "dialogue": f"d{i}"} for i in range(10)])
    config = DataConfig(source=str(tmp_path), test=SplitSelection(split="test", every_nth=3, limit=2))
    assert [example.id for example in load_selection(config, "test")] == ["r0", "r3"]


def test_examples_to_dataset():
    dataset = examples_to_dataset([DialogueExample("1", "d", "s"), DialogueExample("2", "e", "t", "x")])
    assert dataset.column_names == ["id", "dialogue", "summary", "topic"]
    assert dataset["topic"] == [None, "x"]


# ---------------------------------------------------------------- subsampling and grouping


def numbered(count: int) -> list[DialogueExample]:
    return [DialogueExample(str(i), f"dialogue {i}", f"summary {i}") for i in range(count)]


def test_subsampling_order_is_shuffle_then_every_nth_then_limit(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [vars(example) for example in numbered(50)])
    ids = lambda **kw: [example.id for example in load_split(str(path), "train", **kw)]  # noqa: E731
    assert ids(every_nth=10) == ["0", "10", "20", "30", "40"]
    assert ids(every_nth=10, limit=2) == ["0", "10"]
    shuffled = ids(shuffle=True, seed=1)
    assert shuffled == ids(shuffle=True, seed=1) and shuffled != ids(shuffle=True, seed=2)
    assert sorted(shuffled, key=int) == ids()
    assert ids(shuffle=True, seed=1, every_nth=10, limit=3) == shuffled[::10][:3]


def test_bad_subsample_values(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    raises(["every_nth=0"], load_split, str(path), "train", every_nth=0)
    raises(["limit=0"], load_split, str(path), "train", limit=0)


def test_group_references_merges_identical_dialogues_in_first_occurrence_order():
    rows = [
        DialogueExample("test_0_1", "A", "a1", "t"),
        DialogueExample("test_1_1", "B", "b1"),
        DialogueExample("test_0_2", "A", "a2"),
        DialogueExample("train_5", "C", "c1"),
    ]
    assert group_references(rows) == [
        ReferenceGroup("test_0", "A", ("a1", "a2"), "t"),
        ReferenceGroup("test_1", "B", ("b1",)),
        ReferenceGroup("train_5", "C", ("c1",)),
    ]


def test_group_ids_stay_unique_when_suffixes_collide():
    rows = [DialogueExample("x_0_1", "A", "a"), DialogueExample("x_0_2", "B", "b")]
    assert [group.id for group in group_references(rows)] == ["x_0", "x_0_2"]


def test_select_groups_keeps_whole_groups():
    groups = group_references([DialogueExample(f"t_{i // 3}_{i % 3}", f"d{i // 3}", f"s{i}") for i in range(30)])
    chosen = select_groups(groups, limit=2, every_nth=3)
    assert [group.id for group in chosen] == ["t_0", "t_3"]
    assert all(len(group.references) == 3 for group in chosen)
    assert select_groups(groups, shuffle=True, seed=3) == select_groups(groups, shuffle=True, seed=3)
    assert select_groups(groups, shuffle=True, seed=3) != groups


# ---------------------------------------------------------------- the hub


def test_hub_id_goes_to_load_dataset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_load_dataset(source, split):
        calls.append((source, split))
        return datasets.Dataset.from_list(ROWS[:2])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_split("knkarthick/dialogsum", "dev")
    assert calls == [("knkarthick/dialogsum", "validation")]
    assert [example.id for example in examples] == ["a", "b"]


def test_hub_failure_suggests_a_local_path(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def offline(source, split):
        raise ConnectionError("Couldn't reach 'knkarthick/dialogsum' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    needles = ["knkarthick/dialogsum", "Hugging Face hub", "no local file or directory of that name", "Couldn't reach"]
    error = raises(needles, load_split, "knkarthick/dialogsum", "train")
    assert "local path" in error.hint


# ---------------------------------------------------------------- bad sources, splits and columns


def test_missing_file_or_directory(tmp_path):
    raises([str(tmp_path / "nope.jsonl"), "not found"], load_split, str(tmp_path / "nope.jsonl"), "train")
    raises([str(tmp_path / "nodir"), "not found"], load_split, str(tmp_path / "nodir"), "train")
    raises(["data/shared/dialogsum", "not found"], load_split, "data/shared/dialogsum", "train")  # a path, not a hub id


def test_unknown_split_lists_known_splits_and_files(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    error = raises(["unknown split 'trian'", "train.jsonl"], load_split, str(tmp_path), "trian")
    assert "train, validation, test" in error.hint
    raises(["unknown split 'x'"], load_split, str(tmp_path / "train.jsonl"), "x")


def test_directory_without_the_split_file(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    raises(["no file for split 'test'", str(tmp_path), "train.jsonl"], load_split, str(tmp_path), "test")


def test_directory_with_two_files_for_one_split(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_csv(tmp_path / "train.csv", ROWS)
    raises(["several files", "train.jsonl", "train.csv"], load_split, str(tmp_path), "train")


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("hello", encoding="utf-8")
    raises(["unsupported", "data.txt"], load_split, str(path), "train")


def test_missing_column_names_it_and_the_columns_present(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"id": "1", "text": "d", "summary": "s"}])
    error = raises(["no column 'dialogue'", "id, text, summary"], load_split, str(path), "train")
    assert "data.columns.dialogue=" in error.hint


def test_empty_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    raises(["no rows"], load_split, str(path), "train")


# ---------------------------------------------------------------- bad rows


def test_empty_and_whitespace_texts_name_the_ids(tmp_path):
    rows = [{**ROWS[0], "id": f"r{i}", "summary": " \n" if i % 2 else ""} for i in range(8)] + ROWS
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    needles = ["8 rows have an empty summary", "ids r0, r1, r2, r3, r4 and 3 more", "lines 1, 2"]
    raises(needles, load_split, str(path), "train")
    path = write_jsonl(tmp_path / "one.jsonl", [*ROWS, {**ROWS[0], "id": "z", "dialogue": "  "}])
    raises(["1 row has an empty dialogue (column 'dialogue')", "ids z", "line"], load_split, str(path), "train")


def test_malformed_jsonl_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + '{"id": "b", "dialogue": "x",\n', encoding="utf-8")
    raises([f"{path}:3", "invalid JSON", "Expecting property name"], load_split, str(path), "train")


def test_python_dict_literal_line(tmp_path):
    path = tmp_path / "data.jsonl"
    python_line = str({"id": "b", "dialogue": "d", "summary": None})  # {'id': 'b', ..., 'summary': None}
    path.write_text(json.dumps(ROWS[0]) + "\n" + python_line + "\n", encoding="utf-8")
    error = raises([f"{path}:2", "Python dict literal", "double quotes"], load_split, str(path), "train")
    assert "json.dumps" in error.hint


def test_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n", encoding="utf-8")
    raises([f"{path}:2", "expected a JSON object, got an array"], load_split, str(path), "train")


def test_json_array_with_a_non_object(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([ROWS[0], 5]), encoding="utf-8")
    raises(["item 1", "not an object"], load_split, str(path), "train")


def test_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "data.jsonl"
    good = (json.dumps(ROWS[0]) + "\n").encode()
    path.write_bytes(good + '{"id": "b", "dialogue": "caf\u00e9", "summary": "s"}\n'.encode("latin-1"))
    offset = len(good) + len('{"id": "b", "dialogue": "caf')
    error = raises([f"{path}:2", "not UTF-8", f"offset {offset}", "0xe9"], load_split, str(path), "train")
    assert "UTF-8" in error.hint


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path, suffix):
    plain = tmp_path / f"plain{suffix}"
    if suffix == ".csv":
        write_csv(plain, ROWS)
    elif suffix == ".jsonl":
        write_jsonl(plain, ROWS)
    else:
        plain.write_text(json.dumps(ROWS), encoding="utf-8")
    with_bom = tmp_path / f"bom{suffix}"
    with_bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())  # as Excel and Notepad save UTF-8
    loaded = load_split(str(with_bom), "train")
    assert loaded == load_split(str(plain), "train")
    assert [example.id for example in loaded] == ["a", "b", "c"]  # the "id" column, not "\ufeffid"


def test_bytes_that_are_not_utf8_after_a_byte_order_mark_count_the_mark(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"id": "b", "dialogue": "caf\xe9", "summary": "s"}\n')
    offset = 3 + len('{"id": "b", "dialogue": "caf')
    raises([f"{path}:1", f"byte 0xe9 at byte offset {offset}"], load_split, str(path), "train")


def test_csv_empty_cells_name_lines_and_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('id,dialogue,summary\n1,"a\nb",s\n2,d,\n3,e,f\n4,g,\n', encoding="utf-8")
    needles = [str(path), "2 rows have an empty summary (column 'summary')", "ids 2, 4", "lines 4, 6"]
    raises(needles, load_split, str(path), "train")


def test_csv_row_with_too_many_cells(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("id,dialogue,summary\n1,d,s\n2,d,s,extra\n", encoding="utf-8")
    raises([f"{path}:3", "4 cells", "3 columns"], load_split, str(path), "train")


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"not parquet at all")
    raises(["could not read Parquet file", str(path)], load_split, str(path), "train")
