"""Options and helpers that several commands share (the serve command's too)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional, get_args

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


PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="what generate computes in: auto (bf16 autocast on a CPU or GPU with native bf16), float32 or bfloat16",
    ),
]


PickleOpt = Annotated[bool, typer.Option("--allow-pickle", help="allow pickle .bin weights (only for files you trust)")]


PromptOpt = Annotated[str, typer.Option("--prompt", help="a named prompt template (lab, t5, plain, brief)")]


TemplateOpt = Annotated[Optional[str], typer.Option("--template", help="your own template; must contain {dialogue}")]


MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1)]


BeamsOpt = Annotated[int, typer.Option("--num-beams", min=1, help="1 is greedy")]


BatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]


EngineOpt = Annotated[
    str, typer.Option("--engine", help="torch (the reference) or ctranslate2 (faster; pip install 'sumlab[fast]')")
]


ComputeTypeOpt = Annotated[
    str,
    typer.Option(
        "--compute-type",
        help="for --engine ctranslate2: auto (float32 on a CPU, bfloat16 on a GPU that has it), float32, int8, "
        "int8_float32, bfloat16; float16 and int8_float16 on CUDA",
    ),
]


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise unless ``value`` is one of ``choices``, naming the option and the choices."""
    if value not in choices:
        raise SumlabError(f"{option} {value!r} is not one of: {', '.join(choices)}", "pass one of those values")


def check_engine_options(engine: str, compute_type: str) -> None:
    """``--engine`` and ``--compute-type``: known values, a compute type only for ctranslate2, and (for it) the
    optional package and a compute type this machine runs, checked before any data or model loads.

    Raises:
        SumlabError: naming the option and the fix.
    """
    from sumlab.config import ComputeType, Engine

    check_choice("--engine", engine, get_args(Engine))
    check_choice("--compute-type", compute_type, get_args(ComputeType))
    if engine == "ctranslate2":
        from sumlab.config import GenerationSettings
        from sumlab.generation.ctranslate2_engine import check_engine_ready

        check_engine_ready(GenerationSettings(engine=engine, compute_type=compute_type), "--engine ctranslate2")
    elif compute_type != "auto":
        raise SumlabError(
            f"--compute-type {compute_type} is for --engine ctranslate2",
            "add --engine ctranslate2, or choose torch's precision with --dtype",
        )


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


def generation_options(max_new_tokens: int, num_beams: int, batch_size: int, **settings):
    """The GenerationSettings of the generation options (``settings``: any other of its fields).

    A bad value is a SumlabError naming the option.
    """
    from sumlab.config import GenerationSettings, build_config

    fields = {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "batch_size": batch_size, **settings}
    return build_config(GenerationSettings, fields, "options")


def refuse_overwrite(path: Path, overwrite: bool) -> None:
    """Raise unless ``path`` is free, or ``--overwrite`` was given."""
    if path.exists() and not overwrite:
        raise SumlabError(f"{path} already exists", "choose another --out, or pass --overwrite")


ConfigArg = Annotated[Path, typer.Argument(help="YAML config (see configs/)")]


SetOpt = Annotated[
    Optional[list[str]], typer.Option("--set", help="override a config value: key.path=value (repeatable)")
]
