"""``sumlab inspect``, ``sumlab merge`` and ``sumlab export``: parameter counts, merged adapters, converted models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sumlab.cli.options import (
    MODEL_HELP,
    BaseModelOpt,
    ComputeTypeOpt,
    PickleOpt,
    RandomInitOpt,
    TokenizerOpt,
    check_choice,
    console,
    model_options,
    refuse_overwrite,
)
from sumlab.config import DEFAULT_MODEL


def inspect(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)] = DEFAULT_MODEL,
    random_init: RandomInitOpt = False,
    allow_pickle: PickleOpt = False,
    lora_r: Annotated[Optional[int], typer.Option("--lora-r", min=1, help="add a LoRA adapter of this rank")] = None,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1)] = 32,
    lora_targets: Annotated[
        Optional[str],
        typer.Option(
            "--lora-targets", help="comma-separated module names (default: the architecture's q and v, as the lab)"
        ),
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the counts as JSON")] = None,
) -> None:
    """Print the lab's parameter counts for a model, or for it with a LoRA adapter added."""
    from sumlab.config import PeftSettings
    from sumlab.models.loading import load_model
    from sumlab.models.parameters import count_parameters
    from sumlab.models.peft_methods import add_peft
    from sumlab.runtime.fileio import write_json_atomic

    config = model_options(model, random_init, None, "float32", allow_pickle)
    loaded = load_model(config)
    if lora_r is not None:
        targets = [target.strip() for target in (lora_targets or "").split(",") if target.strip()] or None
        loaded = add_peft(loaded, PeftSettings(method="lora", r=lora_r, alpha=lora_alpha, targets=targets))
    counts = count_parameters(loaded)
    print(counts)
    if json_out is not None:
        write_json_atomic(json_out, counts.to_json())


def merge(
    adapter: Annotated[str, typer.Option("--adapter", help="a run directory or an adapter directory")],
    out: Annotated[Path, typer.Option("--out", help="directory for the merged model")],
    model: BaseModelOpt = None,
    allow_pickle: PickleOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing --out")] = False,
) -> None:
    """Merge a LoRA adapter into its base and save a standalone model, checking outputs are unchanged."""
    from sumlab.models.adapters import merge_adapter

    refuse_overwrite(out, overwrite)
    report = merge_adapter(adapter, out, base=model, allow_pickle=allow_pickle)
    console.print(f"merged into {out} (max logit difference {report['max_abs_logit_difference']:.2e})")


def export(
    model: Annotated[str, typer.Argument(help="hub id, or a model, run or adapter directory (adapters are merged)")],
    out: Annotated[Path, typer.Option("--out", help="directory to write the converted model into")],
    target_format: Annotated[str, typer.Option("--format", help="the target format: ctranslate2")] = "ctranslate2",
    compute_type: ComputeTypeOpt = "auto",
    tokenizer: TokenizerOpt = None,
    random_init: RandomInitOpt = False,
    allow_pickle: PickleOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing --out")] = False,
) -> None:
    """Convert a model for deployment with CTranslate2 (the tokenizer and configs go into its hf/ folder).

    --compute-type is the precision the weights are stored in (auto: float32); CTranslate2 can still run them
    in another one.
    """
    from typing import get_args

    from sumlab.config import ComputeType
    from sumlab.generation.conversion import export_model

    check_choice("--format", target_format, ("ctranslate2",))
    check_choice("--compute-type", compute_type, get_args(ComputeType))
    refuse_overwrite(out, overwrite)
    config = model_options(model, random_init, tokenizer, "float32", allow_pickle)
    export_model(config, out, compute_type, overwrite=overwrite)
    console.print(f"exported {model} to {out} (CTranslate2, {'float32' if compute_type == 'auto' else compute_type})")
