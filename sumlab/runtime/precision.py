"""Which precision a device computes in: native bf16 detection, and bf16 autocast for training and generation.

``auto`` means bf16 wherever the device computes it natively: a CUDA GPU that supports it, or a CPU with bf16
instructions (AVX512-BF16 or AMX, common on current x86 servers). Elsewhere bf16 is emulated and slower than
float32, so ``auto`` stays float32 there, while an explicit ``bfloat16`` runs anyway, with a warning.

On a CPU the weights stay float32 and ``torch.autocast`` casts them to bf16 per operation: the matmuls run at
bf16 speed, while the weights, the optimizer and the reductions that need it (softmax, layer norm, the loss)
keep float32.

``SUMLAB_CPU_BF16=1`` or ``=0`` overrides what the CPU's flags say (for a container that hides them, or to keep
``auto`` in float32 on a CPU that has bf16; the test suite sets ``0`` so that it behaves alike on every machine).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

from sumlab.errors import SumlabError

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
CPU_BF16_ENV = "SUMLAB_CPU_BF16"
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 /proc/cpuinfo flags of bf16 instructions
T5_TYPES = frozenset({"t5", "mt5", "umt5"})


def cpu_model_and_flags(cpuinfo: Path | None = None) -> tuple[str | None, set[str]]:
    """The CPU's model name and its feature flags, from ``/proc/cpuinfo`` (Linux; ``(None, set())`` elsewhere)."""
    try:
        text = (cpuinfo or CPUINFO).read_text()
    except OSError:
        return None, set()
    fields = [line.split(":", 1) for line in text.splitlines() if ":" in line]
    names = [value.strip() for key, value in fields if key.strip() == "model name"]
    flags = next((value.split() for key, value in fields if key.strip() == "flags"), [])
    return (names[0] if names else None), set(flags)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16), read once per process.

    Only Linux on x86 is recognised: on other systems (macOS, Windows, ARM) the answer is a conservative False,
    so ``auto`` stays float32 there. ``SUMLAB_CPU_BF16=1`` or ``=0`` overrides the answer.

    Raises:
        SumlabError: ``SUMLAB_CPU_BF16`` is set to something other than 0 or 1.
    """
    override = os.environ.get(CPU_BF16_ENV, "").strip()
    if override:
        if override not in ("0", "1"):
            raise SumlabError(
                f"{CPU_BF16_ENV}={override!r} is not 0 or 1", f"set {CPU_BF16_ENV} to 0 or 1, or unset it"
            )
        return override == "1"
    if not sys.platform.startswith("linux"):
        return False
    return bool(NATIVE_BF16_FLAGS & cpu_model_and_flags()[1])


def default_device() -> torch.device:
    """The device sumlab runs on when none is named: CUDA when present, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def has_native_bf16(device: torch.device | str | None = None) -> bool:
    """Whether ``device`` (default: CUDA if present, else the CPU) computes bf16 natively.

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: bf16 instructions in its flags (``cpu_has_native_bf16``).
    Any other device: False.
    """
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def refuse_float16_for_t5(precision: str, model_type: str | None) -> None:
    """Raise for float16 on a T5 model, whose activations overflow fp16's range."""
    if precision == "float16" and model_type in T5_TYPES:
        raise SumlabError(
            "float16 is refused for T5 models: T5's activations overflow fp16's range and give NaN/inf",
            "use bfloat16 on a GPU that supports it, or float32",
        )


def warn_if_emulated_bf16(device: torch.device | str | None = None) -> None:
    """Log a warning when bf16 is asked for on a device that only emulates it (slower than float32)."""
    device = torch.device(device) if device is not None else default_device()
    if not has_native_bf16(device):
        what = "this CPU has no bf16 instructions (AVX512-BF16 or AMX)" if device.type == "cpu" else f"{device}"
        log.warning("bfloat16 on %s: it is emulated and will be slower than float32", what)


def uses_bf16(precision: str, device: torch.device | str | None = None) -> bool:
    """Whether ``precision`` computes in bf16 on ``device``: ``bfloat16`` always, ``auto`` where it is native."""
    return precision == "bfloat16" or (precision == "auto" and has_native_bf16(device))


def autocast_dtype(precision: str, device: torch.device | str | None = None) -> torch.dtype | None:
    """The dtype ``precision`` autocasts to on ``device``, or None for float32 (no autocast).

    ``bfloat16`` on a device without native bf16 logs a warning that it will be slow.
    """
    if precision == "float16":
        return torch.float16
    if not uses_bf16(precision, device):
        return None
    if precision == "bfloat16":
        warn_if_emulated_bf16(device)
    return torch.bfloat16


def compute_precision(model, precision: str):
    """A context manager that runs ``model`` (plain or PEFT-wrapped) in ``precision``, for generation.

    It autocasts when ``precision`` asks for a half precision that the model's weights are not already in: float32
    weights under ``auto`` on a device with native bf16, or under ``bfloat16``. Weights loaded in a half precision
    (``--dtype bfloat16``, or ``auto`` on a GPU) already compute in it, and float32 leaves the model as loaded.

    Raises:
        SumlabError: float16 for a T5 model.
    """
    refuse_float16_for_t5(precision, getattr(model.config, "model_type", None))
    weights = next(model.parameters())
    dtype = autocast_dtype(precision, weights.device)
    if dtype is None or weights.dtype == dtype:
        return nullcontext()
    return torch.autocast(weights.device.type, dtype=dtype)
