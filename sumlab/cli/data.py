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
    """Row counts, token-length percentiles, truncation at the maximum lengths, and round-trip losses.

    Lengths are counted as training builds its features: through a causal model's chat template, with the
    summary's end token.
    """
    from sumlab.data.audit import audit_examples
    from sumlab.data.loading import load_split
    from sumlab.errors import SumlabError
    from sumlab.models.family import model_family
    from sumlab.models.loading import load_tokenizer
    from sumlab.runtime.fileio import write_json_atomic

    config = model_options(model, False, tokenizer, "auto", False)  # the tokenizer of this model, or --tokenizer
    template = prompt_template(prompt, None)
    split_names = [s.strip() for s in splits.split(",") if s.strip()]
    if not split_names:
        raise SumlabError(f"no split in --splits {splits!r}", "name one or more, e.g. --splits train,validation")
    # the data first: a broken file gets its own error, even offline where no tokenizer could load
    examples = {split: load_split(data, split) for split in split_names}
    loaded_tokenizer = load_tokenizer(config)
    causal = model_family(config) == "causal"
    report = {
        split: audit_examples(rows, loaded_tokenizer, template, max_source_length, max_target_length, causal=causal)
        for split, rows in examples.items()
    }
    console.print_json(json.dumps(report))
    if json_out is not None:
        write_json_atomic(json_out, report)
