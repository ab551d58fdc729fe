"""Hub id or local path: the one rule that model and dataset loaders both follow."""

from __future__ import annotations

from pathlib import Path

PATH_PREFIXES = (".", "/", "~")


FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")  # a name ending so is a file, never a hub id


def local_path(name_or_path: str) -> Path | None:
    """The local path ``name_or_path`` names, or None when it is a hub id (``name`` or ``owner/name``).

    A name is a local path when it exists here, or when it can only be one: it starts with ``.``, ``/`` or
    ``~``, has more than one ``/``, or ends in a data file suffix. Such a path need not exist (the caller
    reports it as not found, rather than asking the hub for it).
    """
    path = Path(name_or_path).expanduser()
    written_as_path = (
        name_or_path.startswith(PATH_PREFIXES)
        or name_or_path.count("/") > 1
        or name_or_path.lower().endswith(FILE_SUFFIXES)
    )
    return path if written_as_path or path.exists() else None


def missing_local_path(name_or_path: str) -> Path | None:
    """The local path ``name_or_path`` names when it does not exist; None for a hub id or an existing path."""
    path = local_path(name_or_path)
    return path if path is not None and not path.exists() else None
