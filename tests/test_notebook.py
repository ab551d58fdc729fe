"""The example notebook runs top to bottom (nbclient), as a new user would run it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "dialogue_summarization.ipynb"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_notebook_executes_without_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SUMLAB_CACHE", str(tmp_path / "cache"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "trainable model parameters" in outputs
    assert "ABSOLUTE IMPROVEMENT OF LORA OVER ORIGINAL" in outputs
