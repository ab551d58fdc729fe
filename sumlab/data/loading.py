"""Load dialogue/summary pairs from the hub or local files, validate them, group references, subsample.

A source is one of:

- a Hugging Face hub id, e.g. ``knkarthick/dialogsum``, read with ``datasets.load_dataset``;
- a local directory with one file per split: ``train``, ``validation`` (or ``dev``) and ``test``,
  each ``.jsonl``, ``.json``, ``.csv`` or ``.parquet``;
- a local file, which holds a single split: asking it for any known split returns all of its rows.

Each problem with the data is a SumlabError that names the file, line, column or ids at fault.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sumlab.config import ColumnMap, DataConfig
from sumlab.errors import SumlabError, first_line
from sumlab.runtime.paths import FILE_SUFFIXES, local_path

if TYPE_CHECKING:
    import datasets

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"dev": "validation", "val": "validation"}
_MAX_LISTED = 5
_REFERENCE_SUFFIX = re.compile(r"^(.+_\d+)_\d+$")  # test_0_1 -> test_0, while train_5 stays train_5
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}

T = TypeVar("T")


@dataclass(frozen=True)
class DialogueExample:
    """One dialogue with one reference summary."""

    id: str
    dialogue: str
    summary: str
    topic: str | None = None


@dataclass(frozen=True)
class ReferenceGroup:
    """One dialogue with all of its reference summaries (DialogSum test has three per dialogue)."""

    id: str
    dialogue: str
    references: tuple[str, ...]
    topic: str | None = None


@dataclass(frozen=True)
class _Table:
    """Raw rows from one source, with what error messages need to point at them."""

    origin: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int] | None = None  # the file line each row starts on, for line-based formats


# ---------------------------------------------------------------- public API


def load_split(
    source: str,
    split: str,
    columns: ColumnMap = ColumnMap(),
    *,
    limit: int | None = None,
    every_nth: int = 1,
    shuffle: bool = False,
    seed: int = 42,
) -> list[DialogueExample]:
    """Load one split of ``source`` as validated examples, then subsample its rows.

    Args:
        source: a hub id, a directory with one file per split, or a single file (which is every split).
        split: ``train``, ``validation`` or ``test``; ``dev`` and ``val`` mean ``validation``.
        columns: which source column holds each field; without an id column, ids are ``{split}_{row}``.
        limit, every_nth, shuffle, seed: applied in the order shuffle (seeded), every n-th row, limit.

    Raises:
        SumlabError: for a missing path, unknown split, missing column, empty text or unreadable file.
    """
    name, table = _read_source(source, split)
    examples = _to_examples(table, columns, name)
    return _subsample(examples, limit=limit, every_nth=every_nth, shuffle=shuffle, seed=seed)


def load_selection(config: DataConfig, which: str) -> list[DialogueExample]:
    """Load the ``train``, ``validation`` or ``test`` selection that ``config`` describes."""
    if which not in SPLITS:
        raise ValueError(f"which must be one of {SPLITS}, not {which!r}")
    selection = getattr(config, which)
    return load_split(
        config.source,
        selection.split,
        config.columns,
        limit=selection.limit,
        every_nth=selection.every_nth,
        shuffle=selection.shuffle,
        seed=config.seed,
    )


def canonical_split(split: str, *, present: Sequence[str] = ()) -> str:
    """The standard name of ``split`` (``dev`` -> ``validation``); ``present`` names split files for the error."""
    name = SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())
    if name not in SPLITS:
        found = f"; split files here: {', '.join(present)}" if present else ""
        raise SumlabError(
            f"unknown split '{split}'{found}", f"use one of: {', '.join(SPLITS)}; dev is an alias of validation"
        )
    return name


def group_references(examples: Sequence[DialogueExample]) -> list[ReferenceGroup]:
    """Merge rows with identical dialogue text into one group per dialogue, in first-occurrence order.

    A group's id is its first row's id without a DialogSum-style reference suffix (``test_0_1`` ->
    ``test_0``), unless another group already took that id.
    """
    rows_by_dialogue: dict[str, list[DialogueExample]] = {}
    for example in examples:
        rows_by_dialogue.setdefault(example.dialogue, []).append(example)
    groups: list[ReferenceGroup] = []
    taken: set[str] = set()
    for rows in rows_by_dialogue.values():
        first = rows[0]
        match = _REFERENCE_SUFFIX.match(first.id)
        group_id = match.group(1) if match and match.group(1) not in taken else first.id
        taken.add(group_id)
        references = tuple(row.summary for row in rows)
        groups.append(ReferenceGroup(group_id, first.dialogue, references, first.topic))
    return groups


def select_groups(
    groups: Sequence[ReferenceGroup],
    limit: int | None = None,
    every_nth: int = 1,
    shuffle: bool = False,
    seed: int = 42,
) -> list[ReferenceGroup]:
    """Subsample whole reference groups (shuffle, every n-th, limit), so no dialogue loses references."""
    return _subsample(groups, limit=limit, every_nth=every_nth, shuffle=shuffle, seed=seed)


def examples_to_dataset(examples: Sequence[DialogueExample]) -> datasets.Dataset:
    """A ``datasets.Dataset`` with string columns id, dialogue, summary and topic."""
    import datasets  # imported here: it takes about a second, and most callers never need it

    fields = ("id", "dialogue", "summary", "topic")
    features = datasets.Features({name: datasets.Value("string") for name in fields})
    data = {name: [getattr(example, name) for example in examples] for name in fields}
    return datasets.Dataset.from_dict(data, features=features)


# ---------------------------------------------------------------- finding the source


def _read_source(source: str, split: str) -> tuple[str, _Table]:
    """Resolve ``split`` and read its rows from a hub id, a directory or a single file."""
    path = _local_path(source)
    if path is None:
        name = canonical_split(split)
        return name, _load_hub(source, name)
    if path.is_dir():
        name = canonical_split(split, present=_split_files(path))
        return name, _read_file(_find_split_file(path, name))
    return canonical_split(split), _read_file(path)


def _local_path(source: str) -> Path | None:
    """The path ``source`` names, or None for a hub id; a path-like source that does not exist is an error."""
    if source == "sumlab-demo":
        from sumlab.demo.corpus import demo_corpus_dir

        return demo_corpus_dir()
    path = local_path(source)
    if path is not None and not path.exists():
        raise SumlabError(
            f"data source not found: {path}",
            "check the path; a directory must hold train/validation/test .jsonl, .json, .csv or .parquet files",
        )
    return path


def _split_files(directory: Path) -> list[str]:
    """Names of the files in ``directory`` that hold a split."""
    stems = {*SPLITS, *SPLIT_ALIASES}
    return sorted(file.name for file in directory.iterdir() if file.stem in stems and file.suffix in FILE_SUFFIXES)


def _find_split_file(directory: Path, split: str) -> Path:
    """The one file in ``directory`` for ``split``, under its own name or an alias."""
    stems = [split, *(alias for alias, target in SPLIT_ALIASES.items() if target == split)]
    found = [directory / f"{stem}{suffix}" for stem in stems for suffix in FILE_SUFFIXES]
    found = [file for file in found if file.is_file()]
    if not found:
        present = ", ".join(_split_files(directory)) or "none"
        raise SumlabError(
            f"no file for split '{split}' in {directory}; split files here: {present}",
            f"add {split}.jsonl, .json, .csv or .parquet there, or choose another split",
        )
    if len(found) > 1:
        names = ", ".join(file.name for file in found)
        raise SumlabError(f"several files for split '{split}' in {directory}: {names}", "keep only one of them")
    return found[0]


def _load_hub(source: str, split: str) -> _Table:
    """Read one split of a hub dataset; any failure (offline, unknown id or split) becomes a SumlabError."""
    import datasets

    try:
        dataset = datasets.load_dataset(source, split=split)
    except Exception as exc:  # noqa: BLE001 - the hub fails in many ways, and all need the same advice
        reason = first_line(exc)
        raise SumlabError(
            f"could not load dataset '{source}' (split {split}) from the Hugging Face hub, and there is no local "
            f"file or directory of that name: {reason}",
            "pass a local path instead, e.g. --set data.source=../shared/data/dialogsum",
        ) from exc
    return _Table(f"{source} [{split}]", list(dataset.column_names), dataset.to_list())


# ---------------------------------------------------------------- reading files


def _read_file(path: Path) -> _Table:
    """Read a .jsonl, .json, .csv or .parquet file into rows."""
    readers = {".jsonl": _read_json, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise SumlabError(f"unsupported data file type: {path}", "use a .jsonl, .json, .csv or .parquet file")
    return reader(path)


def read_text_file(path: Path) -> str:
    """A user's text file, decoded as UTF-8 with or without a byte order mark (which is dropped).

    Raises:
        SumlabError: when the file can't be read, or holds bytes that are not UTF-8 (naming the line and offset).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SumlabError(f"could not read {path}: {exc.strerror}", "check that the file is readable") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + len(data) - len(exc.object)  # exc.object is what follows a byte order mark
        line = data.count(b"\n", 0, start) + 1
        raise SumlabError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[start]:02x} at byte offset {start})",
            "re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8",
        ) from None


def _read_json(path: Path) -> _Table:
    """JSON Lines (one object per line, blank lines skipped); a .json file may instead hold one array."""
    text = read_text_file(path)
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        return _read_json_array(path, text)
    rows, lines = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            rows.append(_parse_json_object(line, f"{path}:{number}"))
            lines.append(number)
    return _Table(str(path), _columns_of(rows), rows, lines)


def _read_json_array(path: Path, text: str) -> _Table:
    """A JSON array of objects."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SumlabError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}", "fix the JSON at that line") from None
    bad = next((index for index, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise SumlabError(f"{path}: item {bad} of the array is not an object", "make each item a JSON object")
    return _Table(str(path), _columns_of(rows), rows)


def _parse_json_object(line: str, where: str) -> dict[str, Any]:
    """Parse one JSON Lines line, saying clearly when it is a Python dict literal instead."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        if _is_python_dict_literal(line):
            raise SumlabError(
                f"{where}: looks like a Python dict literal, not JSON (use double quotes and true/false/null)",
                "write each row with json.dumps(row), not str(row)",
            ) from None
        raise SumlabError(
            f"{where}: invalid JSON: {exc.msg} (column {exc.colno})",
            "each line must hold one JSON object; fix or remove that line",
        ) from None
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), "null")
        raise SumlabError(f"{where}: expected a JSON object, got {kind}", "each line must hold one JSON object")
    return value


def _is_python_dict_literal(line: str) -> bool:
    """Whether ``line`` is a Python dict literal; ``ast.literal_eval`` evaluates literals only, never code."""
    try:
        return isinstance(ast.literal_eval(line.strip()), dict)
    except Exception:  # noqa: BLE001 - literal_eval raises ValueError, SyntaxError, RecursionError, ...
        return False


def _read_csv(path: Path) -> _Table:
    """A CSV file with a header row; each row remembers the line it starts on."""
    reader = csv.reader(io.StringIO(read_text_file(path), newline=""))
    rows, lines = [], []
    try:
        header = next(reader, [])
        end = reader.line_num
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record:  # a blank line
                continue
            if len(record) != len(header):
                raise SumlabError(
                    f"{path}:{start}: {len(record)} cells, but the header has {len(header)} columns",
                    "quote cells that contain commas or line breaks",
                )
            rows.append(dict(zip(header, record)))
            lines.append(start)
    except csv.Error as exc:
        raise SumlabError(f"{path}:{reader.line_num}: malformed CSV: {exc}", "fix the quoting on that line") from None
    return _Table(str(path), header, rows, lines)


def _read_parquet(path: Path) -> _Table:
    """A Parquet file, read with pyarrow."""
    import pyarrow.parquet as pq  # imported here, like datasets, to keep importing sumlab quick

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise SumlabError(f"could not read Parquet file {path}: {exc}", "check that it is valid Parquet") from None
    return _Table(str(path), table.column_names, table.to_pylist())


def _columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """Every key that appears in any row, in order of first appearance."""
    return list(dict.fromkeys(key for row in rows for key in row))


# ---------------------------------------------------------------- rows to examples


def _to_examples(table: _Table, columns: ColumnMap, split: str) -> list[DialogueExample]:
    """Map the source's columns onto examples and check that no dialogue or summary is empty."""
    if not table.rows:
        raise SumlabError(f"{table.origin}: no rows", "check that the source holds data")
    for field in ("dialogue", "summary"):
        _require_column(table, getattr(columns, field), field)
    id_column = columns.id if columns.id in table.columns else None
    topic_column = columns.topic if columns.topic in table.columns else None
    examples = [
        DialogueExample(
            id=_text(row.get(id_column)) or f"{split}_{index}",
            dialogue=_text(row.get(columns.dialogue)),
            summary=_text(row.get(columns.summary)),
            topic=_text(row.get(topic_column)) or None,
        )
        for index, row in enumerate(table.rows)
    ]
    for field in ("dialogue", "summary"):
        _require_text(examples, table, field, getattr(columns, field))
    return examples


def _require_column(table: _Table, column: str, field: str) -> None:
    """Raise if the source has no column ``column`` for ``field``."""
    if column not in table.columns:
        raise SumlabError(
            f"{table.origin}: no column '{column}' for the {field}; its columns are: {', '.join(table.columns)}",
            f"name the right column with --set data.columns.{field}=<column>",
        )


def _require_text(examples: list[DialogueExample], table: _Table, field: str, column: str) -> None:
    """Raise if any example has an empty or whitespace-only ``field``, naming the ids and file lines."""
    empty = [index for index, example in enumerate(examples) if not getattr(example, field).strip()]
    if not empty:
        return
    count = "1 row has" if len(empty) == 1 else f"{len(empty)} rows have"
    ids = _first_few([examples[index].id for index in empty])
    where = f"; lines {_first_few([table.lines[index] for index in empty])}" if table.lines else ""
    raise SumlabError(
        f"{table.origin}: {count} an empty {field} (column '{column}'): ids {ids}{where}",
        "fill in or remove those rows",
    )


def _text(value: Any) -> str:
    """A cell as text; a missing value is empty text."""
    return "" if value is None else value if isinstance(value, str) else str(value)


def _first_few(items: Sequence[Any]) -> str:
    """The first few items, comma-separated, then how many more there are."""
    shown = ", ".join(str(item) for item in items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _subsample(items: Sequence[T], *, limit: int | None, every_nth: int, shuffle: bool, seed: int) -> list[T]:
    """Shuffle with ``seed`` if asked, keep every n-th item (index % n == 0), then the first ``limit``."""
    if every_nth < 1 or (limit is not None and limit < 1):
        raise SumlabError(f"bad subsample: every_nth={every_nth}, limit={limit}", "use values of 1 or more")
    kept = list(items)
    if shuffle:
        random.Random(seed).shuffle(kept)
    return kept[::every_nth][:limit]
