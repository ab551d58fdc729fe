"""The demo's promise: on its test split, full fine-tuning and LoRA each clearly beat zero-shot.

Runs the real `sumlab demo` (minutes on a CPU). Not a timing test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_shows_the_labs_story(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "SUMLAB_CACHE": str(tmp_path / "cache")}
    completed = subprocess.run(
        [sys.executable, "-m", "sumlab", "demo", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "report.html" in completed.stdout
    results = json.loads((out / "results.json").read_text())
    models = results["models"]
    significance = {(row["a"], row["b"], row["metric"]): row for row in results["significance"]}
    for name in ("full", "lora"):
        assert models[name]["improvement"]["rouge1"] >= 15.0, models[name]["scores"]["rouge1"]
        assert significance[(name, "original", "rouge1")]["p_value"] < 0.01
    assert models["lora"]["cost"]["percent"] < 5.0
    assert models["full"]["cost"]["percent"] == 100.0
    assert (out / "report.html").stat().st_size > 10_000
