"""Typed results: what ``results.json`` and a run directory's ``summary.json`` hold.

``Results`` is the document that ``sumlab run`` and ``sumlab compare`` write and the report reads;
``RunSummary`` is the cost side of one training run. Both forbid unknown keys, so a typo in a producer
fails at once instead of leaving a blank in the report. The JSON Schema of ``Results`` is published
next to this module as ``results.schema.json``; regenerate it after changing a model with::

    python -m sumlab.evaluation.schema
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sumlab.config import PeftMethod
from sumlab.errors import SumlabError
from sumlab.runtime.fileio import write_text_atomic

SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
REQUIRED_METRIC = "rouge1"  # the report's headline, scorecards and examples all show it

ModelKind = Literal["zero_shot", "train", "pretrained"]
SignificanceMethod = Literal["paired_bootstrap", "approximate_randomization"]
LogValue = float | int | str | bool | None


class Document(BaseModel):
    """Base of every part of the documents: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


# -- a run directory's summary.json --------------------------------------------------------------------------------


class ParameterCounts(Document):
    """Trainable and total parameters, as the lab prints them."""

    trainable: int
    total: int
    percent: float = Field(description="trainable share of all parameters, in percent")


class PeakMemory(Document):
    """Peak RSS of the process, and peak CUDA memory allocated when a GPU was used."""

    rss_bytes: int
    cuda_bytes: int | None = None


class TruncatedCounts(Document):
    """How many of a split's examples had their source or target cut at the configured length."""

    sources: int
    targets: int
    examples: int


class RunSummary(Document):
    """What training writes to a run directory's ``summary.json``: the cost side of the lab's comparison."""

    method: PeftMethod
    parameters: ParameterCounts
    saved_bytes: int = Field(description="weight files of the saved model or adapter")
    full_model_bytes: int = Field(description="the whole model's weights at the training dtype")
    wall_seconds: float
    peak_memory: PeakMemory
    train_examples: int
    truncated: dict[str, TruncatedCounts] = Field(description="per split (train, validation)")
    device: Literal["cpu", "cuda"]
    learning_rate: float

    def to_json(self) -> dict:
        """The summary as plain JSON data; keys never given stay absent (no CUDA figures on a CPU run)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def cost(self) -> Cost:
        """The report's cost figures for this run; peak memory is the GPU's when one was used."""
        memory = self.peak_memory
        return Cost(
            **self.parameters.model_dump(),
            saved_bytes=self.saved_bytes,
            full_model_bytes=self.full_model_bytes,
            train_seconds=self.wall_seconds,
            peak_memory_bytes=memory.cuda_bytes if memory.cuda_bytes is not None else memory.rss_bytes,
        )


# -- results.json ---------------------------------------------------------------------------------------------------


class Cost(ParameterCounts):
    """What training a model cost: parameters, size on disk, time and peak memory."""

    saved_bytes: int
    full_model_bytes: int
    train_seconds: float
    peak_memory_bytes: int


class MetricScore(Document):
    """Mean of a per-example metric over the evaluation dialogues and its percentile-bootstrap 95% CI."""

    mean: float
    ci95: tuple[float, float]


class ModelInfo(Document):
    """What a model is and what it cost, apart from its scores: the experiment's part of a model's results."""

    kind: ModelKind = "pretrained"
    method: PeftMethod | None = None
    label: str | None = None
    base_model: str | None = None
    cost: Cost | None = None
    log: list[dict[str, LogValue]] = Field(default_factory=list, description="the training log, one record a line")


class ModelResult(Document):
    """One model's results: what it is, its scores and improvement over the baseline, its cost and training log."""

    kind: ModelKind
    method: PeftMethod | None
    label: str
    base_model: str | None = None
    scores: dict[str, MetricScore] = Field(description="per metric (rouge1, rouge2, rougeL, rougeLsum)")
    improvement: dict[str, float] = Field(description="per metric, over the baseline in ROUGE points")
    cost: Cost | None
    log: list[dict[str, LogValue]] = Field(default_factory=list)

    def info(self) -> ModelInfo:
        """The model's description and cost without its scores (what a rescoring keeps)."""
        return ModelInfo.model_validate(self.model_dump(include=set(ModelInfo.model_fields)))


class PairedTest(Document):
    """A paired significance test of model ``a`` against model ``b`` on one metric; ``delta`` is mean(a - b)."""

    a: str
    b: str
    metric: str
    method: SignificanceMethod
    delta: float
    ci95: tuple[float, float]
    p_value: float


class ExampleRow(Document):
    """One evaluated dialogue: its references, every model's summary and per-example scores."""

    id: str
    dialogue: str = ""
    references: list[str]
    predictions: dict[str, str]
    scores: dict[str, dict[str, float]] = Field(description="per model, per metric")


class EvalSetup(Document):
    """What the models were evaluated on."""

    split: str
    dialogues: int
    references_per_dialogue: float
    aggregate: Literal["max", "mean"]


class Hardware(Document):
    """Where the experiment ran."""

    device: str
    cpu_count: int | None = None
    gpu: str | None = None


class Setup(Document):
    """The report's setup section: model, data, prompt, generation, versions, hardware and time.

    Every key is optional: ``sumlab compare`` of bare predictions files knows only its ``sources``.
    """

    base_model: str | None = None
    dataset: str | None = None
    splits: dict[str, int | None] = Field(default_factory=dict, description="training split sizes")
    eval: EvalSetup | None = None
    prompt: str | None = None
    generation: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    hardware: Hardware | None = None
    wall_seconds: float | None = None
    sources: list[str] | None = Field(default=None, description="the inputs of `sumlab compare`")


class Results(Document):
    """The results document that ``results.json``, the report and ``sumlab compare`` share."""

    name: str
    setup: Setup = Field(default_factory=Setup)
    baseline: str = Field(description="the key of the model the others are compared with (the first)")
    models: dict[str, ModelResult]
    significance: list[PairedTest] = Field(default_factory=list)
    examples: list[ExampleRow] = Field(default_factory=list)
    highlight: list[str] = Field(default_factory=list, description="ids of the examples shown side by side")
    lab_csv: str | None = Field(default=None, description="file name of the lab-compatible CSV next to the report")
    created: str | None = None

    @model_validator(mode="after")
    def _baseline_and_metrics(self) -> Results:
        if not self.models:
            raise ValueError("the results hold no models; score at least one model")
        if self.baseline not in self.models:
            raise ValueError(f"baseline {self.baseline!r} is not one of the models {sorted(self.models)}")
        for key, model in self.models.items():
            if REQUIRED_METRIC not in model.scores:
                raise ValueError(f"model {key!r} has no {REQUIRED_METRIC} score")
        return self

    def to_json(self) -> dict:
        """The document as plain JSON data; keys that were never given stay absent (as in the file read)."""
        return self.model_dump(mode="json", exclude_unset=True)


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    tail = "" if not more else f" (and {more} more problem{'s' if more > 1 else ''})"
    return (f"{where}: " if where else "") + message + tail


DocumentT = TypeVar("DocumentT", bound=Document)


def read_document(path: str | Path, document_type: type[DocumentT], what: str, hint: str) -> DocumentT:
    """Read and validate a JSON document of ``document_type``.

    Raises:
        SumlabError: the file is missing, not JSON, or not ``what``; ``hint`` says what to give instead.
    """
    path = Path(path)
    if not path.is_file():
        raise SumlabError(f"file not found: {path}", "check the path")
    try:
        return document_type.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise SumlabError(f"{path} is not {what}: {_describe(exc)}", hint) from None


def read_results(path: str | Path) -> Results:
    """Read and validate a ``results.json``."""
    return read_document(
        path, Results, "a sumlab results file", "give the results.json that `sumlab run` or `sumlab compare` wrote"
    )


def read_run_summary(path: str | Path) -> RunSummary:
    """Read and validate a run directory's ``summary.json``."""
    return read_document(
        path, RunSummary, "a sumlab run summary", "give a run directory that `sumlab train` or `sumlab run` wrote"
    )


def results_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``results.json``, generated from :class:`Results`."""
    return {"$schema": SCHEMA_DIALECT, **Results.model_json_schema()}


def results_schema_text() -> str:
    """:func:`results_json_schema` as the text of ``results.schema.json``."""
    return json.dumps(results_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_results_schema(path: str | Path = SCHEMA_FILE) -> Path:
    """Regenerate the published ``results.schema.json`` (or write it to ``path``)."""
    write_text_atomic(Path(path), results_schema_text())
    return Path(path)


if __name__ == "__main__":
    print(f"wrote {write_results_schema()}")
