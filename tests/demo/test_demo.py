"""The demo's promise: on its test split, full fine-tuning and LoRA each clearly beat the zero-shot base.

Runs the real `sumlab demo` once (minutes on a CPU) and checks its results. Not a timing test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sumlab.evaluation.schema import read_results

# the demo runs once for the module, in the first test's setup: 5-10 minutes on 2 busy cores
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("demo")
    out = root / "demo"
    # every core, as a user's `sumlab demo` gets (conftest pins the tests themselves to one thread)
    env = {**os.environ, "SUMLAB_CACHE": str(root / "cache"), "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
    completed = subprocess.run(
        [sys.executable, "-m", "sumlab", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "report.html" in completed.stdout
    assert (out / "report.html").stat().st_size > 10_000
    read_results(out / "results.json")  # the typed results: raises unless the file follows the schema
    return json.loads((out / "results.json").read_text())


def beats_zero_shot(results: dict, name: str) -> tuple[float, float]:
    """ROUGE-1 improvement over the zero-shot base in points, and the paired test's p-value."""
    significance = {(row["a"], row["b"], row["metric"]): row for row in results["significance"]}
    return results["models"][name]["improvement"]["rouge1"], significance[(name, "original", "rouge1")]["p_value"]


def test_full_fine_tuning_beats_zero_shot_clearly(demo_results):
    points, p_value = beats_zero_shot(demo_results, "full")
    assert points >= 15.0
    assert p_value < 0.01
    assert demo_results["models"]["full"]["cost"]["percent"] == 100.0


def test_lora_trains_under_five_percent_of_the_parameters(demo_results):
    assert demo_results["models"]["lora"]["cost"]["percent"] < 5.0


def test_lora_beats_zero_shot_clearly(demo_results):
    points, p_value = beats_zero_shot(demo_results, "lora")
    assert points >= 15.0
    assert p_value < 0.01
