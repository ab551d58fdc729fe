"""Options and helpers that several commands share (the serve command's too)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from sumlab.errors import SumlabError

console = Console()


MODEL_HELP = "hub id, or a model directory, an adapter directory (on its base) or a run directory"

ModelOpt = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]


BaseModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model", "-m", help="base model: hub id or directory (default: the one the adapters were trained on)"
    ),
]


DataOpt = Annotated[str, typer.Option("--data", help="hub id, or a local file or directory")]


RandomInitOpt = Annotated[
    bool, typer.Option("--random-init", help="build the architecture with random weights (offline)")
]


TokenizerOpt = Annotated[
    Optional[str], typer.Option("--tokenizer", help="tokenizer id or directory, if not the model's")
]


DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto, float32 or bfloat16 (float16 is refused for T5)")]


PickleOpt = Annotated[bool, typer.Option("--allow-pickle", help="allow pickle .bin weights (only for files you trust)")]


PromptOpt = Annotated[str, typer.Option("--prompt", help="a named prompt template (lab, t5, plain, brief)")]


TemplateOpt = Annotated[Optional[str], typer.Option("--template", help="your own template; must contain {dialogue}")]


MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1)]


BeamsOpt = Annotated[int, typer.Option("--num-beams", min=1, help="1 is greedy")]


BatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]


def model_options(model: str, random_init: bool, tokenizer: str | None, dtype: str, allow_pickle: bool):
    """The ModelConfig that the model options describe (a bad value is a SumlabError naming the option).

    A local ``--model`` is resolved here (``resolve_model_source``), so that a path holding no model fails
    before any data or weights are loaded.
    """
    from sumlab.config import ModelConfig, build_config
    from sumlab.models.resolve import resolve_model_source

    fields = {
        "name_or_path": model,
        "random_init": random_init,
        "tokenizer": tokenizer,
        "dtype": dtype,
        "allow_pickle": allow_pickle,
    }
    try:
        config = build_config(ModelConfig, fields, "options")
    except SumlabError as exc:  # its hint speaks of configs
        raise SumlabError(exc.message, "see --help for the values each option takes") from None
    if not random_init:
        resolve_model_source(model)
    return config


def prompt_template(prompt: str, template: str | None) -> str:
    """The template text of ``--template`` if given, else of the named ``--prompt``; checked either way."""
    from sumlab.text.prompts import check_template, named_template

    return check_template(template) if template is not None else named_template(prompt)


def generation_options(max_new_tokens: int, num_beams: int, batch_size: int):
    """The GenerationSettings of the generation options."""
    from sumlab.config import GenerationSettings

    return GenerationSettings(max_new_tokens=max_new_tokens, num_beams=num_beams, batch_size=batch_size)


def refuse_overwrite(path: Path, overwrite: bool) -> None:
    """Raise unless ``path`` is free, or ``--overwrite`` was given."""
    if path.exists() and not overwrite:
        raise SumlabError(f"{path} already exists", "choose another --out, or pass --overwrite")


ConfigArg = Annotated[Path, typer.Argument(help="YAML config (see configs/)")]


SetOpt = Annotated[
    Optional[list[str]], typer.Option("--set", help="override a config value: key.path=value (repeatable)")
]
