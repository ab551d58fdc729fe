"""Real architectures at random init, offline, for the benchmarks' ``--arch`` settings (issue #14).

Shared by ``train_throughput.py`` and ``generation_speed.py``: the architecture is built from sumlab's bundled
config (``sumlab.models.random_init.build_random_model``; ``Qwen/Qwen2.5-0.5B`` uses the bundled
``Qwen2.5-0.5B-Instruct`` config, the same architecture). Its real tokenizer is not available offline, so a
byte-level BPE tokenizer is trained on DialogSum training text with the architecture's vocabulary size (as many
tokens as BPE finds: all 32,128 for T5, about 37k of Qwen's 151,936); the model keeps its full vocabulary.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from sumlab.data.loading import load_split
from sumlab.models.random_init import build_random_model
from sumlab.models.sources import known_architectures
from sumlab.models.tiny import train_tokenizer


def resolve_architecture(name: str) -> str:
    """The bundled architecture of ``name``; a base model shares its instruct model's (``Qwen/Qwen2.5-0.5B``)."""
    known = known_architectures()
    if name in known:
        return name
    if f"{name}-Instruct" in known:
        return f"{name}-Instruct"
    sys.exit(f"no bundled architecture for {name!r}: use one of {', '.join(sorted(known))}")


def build_arch_model(architecture: str, seed: int, layers: int | None):
    """The architecture at random init, offline (sumlab's builder); with ``layers``, that many per stack."""
    if layers is None:
        return build_random_model(architecture, seed=seed).train()
    config = json.loads(known_architectures()[architecture].read_text())
    for key in ("num_layers", "num_decoder_layers", "num_hidden_layers", "max_window_layers"):
        if key in config:
            config[key] = layers
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.json").write_text(json.dumps(config))
        return build_random_model(folder, seed=seed).train()


def build_arch_tokenizer(data: Path, vocab_size: int, causal: bool):
    """A byte-level BPE tokenizer of up to ``vocab_size`` tokens (as many as BPE finds), on DialogSum train text."""
    rows = load_split(str(data), "train")
    texts = [row.dialogue for row in rows] + [row.summary for row in rows]
    return train_tokenizer(texts, vocab_size=vocab_size, causal=causal)


def trainer_optimizer(parameters, learning_rate: float, weight_decay: float = 0.0):
    """The optimizer sumlab's training gets, and a line that says which: the one transformers' Trainer builds for
    its default ``optim`` (``adamw_torch_fused`` in transformers 5: AdamW with ``fused=True``, which torch also
    has for CPUs), for ``parameters``.
    """
    from transformers import Trainer, TrainingArguments

    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArguments(output_dir=folder, learning_rate=learning_rate, use_cpu=True, report_to="none")
    optimizer_class, options = Trainer.get_optimizer_cls_and_kwargs(args)
    optimizer = optimizer_class(parameters, weight_decay=weight_decay, **options)
    shown = ", ".join(f"{key} {value}" for key, value in options.items() if key in ("lr", "fused"))
    return (
        optimizer,
        f"{optimizer_class.__name__} ({args.optim}, the Trainer's default): {shown}, weight decay {weight_decay}",
    )
