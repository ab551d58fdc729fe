"""What a benchmark ran on, for its result file: the CPU's model and whether it computes bf16 natively."""

from __future__ import annotations

import os
import platform

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
