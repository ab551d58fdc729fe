"""Wall time and peak memory of `sumlab demo`, against its budget (15 minutes, 4 GB RSS, 2 CPU cores).

    python benchmarks/demo_budget.py [--out benchmarks/results/demo_budget.json]

Runs the real command in a child process and records its wall time, the peak RSS of the largest
process it ran (getrusage of the children), the per-stage seconds from its stage markers, and the
headline ROUGE-1 figures, so the budget and the outcome are recorded together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sumlab.runtime.fileio import write_json_atomic

BUDGET_SECONDS = 15 * 60
BUDGET_RSS_BYTES = 4 * 1024**3


def run_demo(out_dir: Path) -> dict:
    """Run `sumlab demo` into ``out_dir`` and measure it."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sumlab", "demo", "--out", str(out_dir)], check=True)
    seconds = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    results = json.loads((out_dir / "results.json").read_text())
    stages = {p.stem: json.loads(p.read_text())["seconds"] for p in sorted((out_dir / "stages").glob("*.json"))}
    return {
        "wall_seconds": round(seconds, 1),
        "peak_rss_bytes": peak_rss,
        "within_time_budget": seconds <= BUDGET_SECONDS,
        "within_memory_budget": peak_rss <= BUDGET_RSS_BYTES,
        "stage_seconds": stages,
        "rouge1": {name: model["scores"]["rouge1"]["mean"] for name, model in results["models"].items()},
        "improvement_rouge1_points": {
            name: model["improvement"]["rouge1"] for name, model in results["models"].items()
        },
        "lora_trainable_percent": results["models"]["lora"]["cost"]["percent"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "demo_budget.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        figures = run_demo(Path(scratch) / "demo")
    figures["machine"] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    figures["budget"] = {"seconds": BUDGET_SECONDS, "rss_bytes": BUDGET_RSS_BYTES}
    write_json_atomic(args.out, figures)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
