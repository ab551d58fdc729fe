"""Parameter counts (as the lab prints them) and sizes on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameters, as the lab prints them."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def to_json(self) -> dict:
        return {"trainable": self.trainable, "total": self.total, "percent": round(self.percent, 4)}

    def __str__(self) -> str:
        return (
            f"trainable model parameters: {self.trainable}\n"
            f"all model parameters: {self.total}\n"
            f"percentage of trainable model parameters: {self.percent:.2f}%"
        )


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameters; shared (tied) tensors count once."""
    seen: dict[int, nn.Parameter] = {}
    for parameter in model.parameters():
        seen.setdefault(id(parameter), parameter)
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return ParameterCount(trainable=trainable, total=total)


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes taken by the weight files under ``path`` (a file or a directory)."""
    target = Path(path)
    if target.is_file():
        return target.stat().st_size
    suffixes = {".safetensors", ".bin"}
    return sum(f.stat().st_size for f in target.rglob("*") if f.is_file() and f.suffix in suffixes)
