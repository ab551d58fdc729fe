"""``sumlab data audit``: what a dataset looks like to the tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sumlab.cli.options import (
    DataOpt,
    ModelOpt,
    PromptOpt,
    TokenizerOpt,
    console,
    model_options,
    prompt_template,
)
from sumlab.config import DEFAULT_DATASET, DEFAULT_MODEL


def data_audit(
    data: DataOpt = DEFAULT_DATASET,
    model: ModelOpt = DEFAULT_MODEL,
    tokenizer: TokenizerOpt = None,
    splits: Annotated[str, typer.Option("--splits", help="comma-separated splits")] = "train,validation,test",
    prompt: PromptOpt = "lab",
    max_source_length: Annotated[int, typer.Option("--max-source-length", min=1)] = 512,
    max_target_length: Annotated[int, typer.Option("--max-target-length", min=1)] = 128,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the audit as JSON")] = None,
) -> None:
    """Row counts, token-length percentiles, truncation at the maximum lengths, and round-trip losses."""
    from sumlab.data.audit import audit_examples
    from sumlab.data.loading import load_split
    from sumlab.models.loading import load_tokenizer
    from sumlab.runtime.fileio import write_json_atomic

    config = model_options(model, False, tokenizer, "auto", False)  # the tokenizer of this model, or --tokenizer
    loaded_tokenizer = load_tokenizer(config)
    template = prompt_template(prompt, None)
    report = {}
    for split in [s.strip() for s in splits.split(",") if s.strip()]:
        examples = load_split(data, split)
        report[split] = audit_examples(examples, loaded_tokenizer, template, max_source_length, max_target_length)
    console.print_json(json.dumps(report))
    if json_out is not None:
        write_json_atomic(json_out, report)
