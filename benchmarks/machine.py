"""What a benchmark ran on, for its result file: the CPU's model and whether it computes bf16 natively."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import torch
import transformers

from sumlab.runtime.precision import cpu_has_native_bf16, cpu_model_and_flags


def machine_info(**extra) -> dict:
    """Platform, CPU model, native bf16 support, core count, versions and the GPU if any; ``extra`` is added.

    ``cpu_native_bf16`` is the answer sumlab's ``precision: auto`` acts on (``sumlab.runtime.precision``).
    """
    cpu, _ = cpu_model_and_flags()
    info = {
        "platform": platform.platform(),
        "cpu": cpu or platform.processor() or platform.machine(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpu_count": os.cpu_count(),
        **extra,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_arm_in_fresh_process(script: str, arm: str, options: list[str]) -> dict:
    """Run ``script --arm ARM *options`` in a new Python process (so its peak RSS is its own) and return the
    JSON object its last output line holds; print its step time and peak RSS. Exit with its stderr if it fails."""
    completed = subprocess.run([sys.executable, script, "--arm", arm, *options], capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"arm {arm} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    print(
        f"{arm}: {result['step_seconds_median']}s/step, peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True
    )
    return result
