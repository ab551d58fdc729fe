"""The options of every command that summarizes (model, prompt, decoding), declared once.

typer reads a command's options from its signature, so two commands that take the same options would have to
repeat them. ``takes_summarizer_options`` adds them to a command's signature instead and hands the command one
``SummarizerOptions`` (click's shared-option decorators do the same).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from typing import Annotated, Optional, get_args

import typer

from sumlab.cli.options import (
    BeamsOpt,
    DtypeOpt,
    MaxNewOpt,
    ModelOpt,
    PickleOpt,
    PrecisionOpt,
    PromptOpt,
    RandomInitOpt,
    TemplateOpt,
    TokenizerOpt,
    generation_options,
    model_options,
    prompt_template,
)
from sumlab.config import DEFAULT_MODEL, ComputeType, Engine
from sumlab.errors import SumlabError

OPTIONS_PARAMETER = "options"

MaxSourceOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-source-length",
        min=1,
        help="cut longer prompts to this many tokens (default: never, unless the model's positions end sooner)",
    ),
]

MaxBatchTokensOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-batch-tokens", min=1, help="most padded prompt tokens in one batch (default: batch size x 512)"
    ),
]


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


@dataclass(frozen=True)
class SummarizerOptions:
    """What ``--model ... --num-beams`` say: the model to load, its prompt, and how to decode."""

    model: ModelOpt = DEFAULT_MODEL
    random_init: RandomInitOpt = False
    tokenizer: TokenizerOpt = None
    dtype: DtypeOpt = "auto"
    allow_pickle: PickleOpt = False
    prompt: PromptOpt = "lab"
    template: TemplateOpt = None
    max_new_tokens: MaxNewOpt = 200
    num_beams: BeamsOpt = 1
    max_source_length: MaxSourceOpt = None
    max_batch_tokens: MaxBatchTokensOpt = None
    engine: EngineOpt = "torch"
    compute_type: ComputeTypeOpt = "auto"
    precision: PrecisionOpt = "auto"

    def __post_init__(self) -> None:
        """Bad engine options fail before any data or model loads."""
        check_choice("--engine", self.engine, get_args(Engine))
        check_choice("--compute-type", self.compute_type, get_args(ComputeType))
        if self.engine == "ctranslate2":
            from sumlab.generation.ctranslate2_engine import check_engine_ready

            check_engine_ready(self.generation(), "--engine ctranslate2")
        elif self.compute_type != "auto":
            raise SumlabError(
                f"--compute-type {self.compute_type} is for --engine ctranslate2",
                "add --engine ctranslate2, or choose torch's precision with --dtype",
            )

    def template_text(self) -> str:
        """The prompt template (checked)."""
        return prompt_template(self.prompt, self.template)

    def load(self):
        """The model (or, with --engine ctranslate2, the engine) and tokenizer the options name.

        Bad option values fail before anything loads.
        """
        from sumlab.models.loading import load_model, load_tokenizer

        config = model_options(self.model, self.random_init, self.tokenizer, self.dtype, self.allow_pickle)
        if self.engine == "ctranslate2":
            from sumlab.generation.ctranslate2_engine import load_engine

            return load_engine(config, self.compute_type)
        self.generation()  # the decoding options are checked before the model loads, too
        return load_model(config), load_tokenizer(config)

    def generation(self, batch_size: int = 1):
        """The decoding settings, for batches of ``batch_size``, on the chosen engine."""
        return generation_options(
            self.max_new_tokens,
            self.num_beams,
            batch_size,
            max_source_length=self.max_source_length,
            max_batch_tokens=self.max_batch_tokens,
            engine=self.engine,
            compute_type=self.compute_type,
            precision=self.precision,
        )


def _option_parameters() -> list[inspect.Parameter]:
    annotations = inspect.get_annotations(SummarizerOptions, eval_str=True)
    return [
        inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=annotations[field.name]
        )
        for field in fields(SummarizerOptions)
    ]


def takes_summarizer_options(command):
    """Give a typer command the summarizer options; it receives them as one ``options: SummarizerOptions``."""
    signature = inspect.signature(command, eval_str=True)
    own = [parameter for name, parameter in signature.parameters.items() if name != OPTIONS_PARAMETER]
    names = [field.name for field in fields(SummarizerOptions)]

    @functools.wraps(command)
    def with_options(**values):
        options = SummarizerOptions(**{name: values.pop(name) for name in names})
        return command(**values, options=options)

    parameters = own + _option_parameters()
    with_options.__signature__ = signature.replace(parameters=parameters)
    with_options.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    del with_options.__wrapped__  # typer must read the new signature, not the command's own
    return with_options
