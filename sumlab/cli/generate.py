"""``sumlab summarize`` and ``sumlab generate``: summaries of one dialogue, or of a whole split."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sumlab.cli.options import (
    BatchOpt,
    DataOpt,
    console,
    refuse_overwrite,
)
from sumlab.cli.summarizer_options import SummarizerOptions, takes_summarizer_options
from sumlab.config import DEFAULT_DATASET
from sumlab.errors import SumlabError


@takes_summarizer_options
def summarize(
    file: Annotated[str, typer.Argument(help="a text file with one dialogue, or - for stdin")] = "-",
    *,
    options: SummarizerOptions,
) -> None:
    """Summarize one dialogue."""
    from sumlab.generation.batching import summarize as summarize_dialogues

    dialogue = _read_dialogue(file)
    template = options.template_text()
    model, tokenizer = options.load()
    print(summarize_dialogues(model, tokenizer, [dialogue], options.generation(), template)[0])


def _read_dialogue(file: str) -> str:
    if file == "-":
        text = sys.stdin.read()
    else:
        path = Path(file)
        if not path.is_file():
            raise SumlabError(f"file not found: {path}", "give a text file with the dialogue, or - to read stdin")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SumlabError(f"{path}: not UTF-8 (byte {exc.start})", "re-encode the file as UTF-8") from None
    if not text.strip():
        raise SumlabError("the dialogue is empty", "pass a file or pipe the dialogue on stdin")
    return text.strip()


@takes_summarizer_options
def generate(
    data: DataOpt = DEFAULT_DATASET,
    out: Annotated[Path, typer.Option("--out", help="predictions file to write (JSON Lines)")] = Path(
        "predictions.jsonl"
    ),
    name: Annotated[
        Optional[str], typer.Option("--name", help="model name in the file (default: from --model)")
    ] = None,
    split: Annotated[str, typer.Option("--split")] = "test",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="at most this many dialogues")] = None,
    every_nth: Annotated[int, typer.Option("--every-nth", min=1, help="keep every n-th dialogue")] = 1,
    batch_size: BatchOpt = 16,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing --out")] = False,
    *,
    options: SummarizerOptions,
) -> None:
    """Summarize a dataset split and write a predictions file (one object per dialogue).

    Under torchrun or accelerate launch the dialogues are split across the processes; rank 0 writes the file.
    """
    from sumlab.config import validate_name
    from sumlab.data.loading import group_references, load_split, select_groups
    from sumlab.evaluation.predictions import PredictionSet, write_predictions
    from sumlab.generation.batching import summarize as summarize_dialogues
    from sumlab.runtime.distributed import is_main_process, run_on_main

    run_on_main(refuse_overwrite, out, overwrite)  # also joins the process group, before any model is loaded
    model_name = name or Path(options.model.rstrip("/")).name
    try:
        validate_name(model_name)
    except ValueError as exc:
        raise SumlabError(str(exc), "pass --name with a simple model name") from None
    groups = select_groups(group_references(load_split(data, split)), limit=limit, every_nth=every_nth)
    template = options.template_text()
    loaded_model, loaded_tokenizer = options.load()
    settings = options.generation(batch_size)
    summaries = summarize_dialogues(loaded_model, loaded_tokenizer, [g.dialogue for g in groups], settings, template)
    if not is_main_process():
        return
    write_predictions(out, PredictionSet.from_groups(groups, model_name, summaries))
    console.print(f"wrote {len(groups)} predictions of {model_name} to {out}")
