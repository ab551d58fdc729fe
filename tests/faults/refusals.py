"""What every refused command must do, checked the same way by the CLI, data and config fault suites.

A refusal is one line on stderr, ``error: <what> (<hint>)``, exit code 2, no traceback, and the work directory
exactly as it was: nothing written, nothing half-written, nothing overwritten. The command runs in-process
through ``sumlab.cli.app.main`` (the console script's entry point, where errors become one line).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sumlab.cli.app import main


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``directory``, with each file's bytes."""
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else None
        for path in sorted(directory.rglob("*"))
    }


def run_refused(args: list, workdir: Path, monkeypatch, capsys) -> str:
    """Run ``sumlab *args`` in ``workdir``; check it was refused cleanly, and return its one error line."""
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = snapshot(workdir)
    line = refused_line(args, monkeypatch, capsys)
    assert snapshot(workdir) == before, "a refused command changed the work directory"
    return line


def refused_line(args: list, monkeypatch, capsys) -> str:
    """Run ``sumlab *args``; check exit code 2, no traceback and one ``error: <what> (<hint>)`` line; return it."""
    monkeypatch.setattr(sys, "argv", ["sumlab", *[str(arg) for arg in args]])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main()
    stderr = capsys.readouterr().err
    assert info.value.code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: ")
    assert line.endswith(")") and " (" in line  # the hint: what to do about it
    return line


def assert_says(line: str, *words: str) -> None:
    for words_ in words:
        assert words_ in line, f"{words_!r} not in {line!r}"
