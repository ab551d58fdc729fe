"""What a benchmark ran on, for its result file: the CPU's model and whether it computes bf16 natively."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
import transformers

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with bf16 instructions


def cpu_model_and_flags() -> tuple[str, set[str]]:
    """The CPU's model name and its feature flags (from /proc/cpuinfo; the platform's name and none elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return platform.processor() or platform.machine(), set()
    fields = [line.split(":", 1) for line in cpuinfo.read_text().splitlines() if ":" in line]
    names = [value.strip() for key, value in fields if key.strip() == "model name"]
    flags = next((value.split() for key, value in fields if key.strip() == "flags"), [])
    return (names[0] if names else platform.processor()), set(flags)


def machine_info(**extra) -> dict:
    """Platform, CPU model, native bf16 support, core count, versions and the GPU if any; ``extra`` is added."""
    cpu, flags = cpu_model_and_flags()
    info = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_native_bf16": any(flag in flags for flag in NATIVE_BF16_FLAGS),
        "cpu_count": os.cpu_count(),
        **extra,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
