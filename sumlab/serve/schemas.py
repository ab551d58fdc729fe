"""Request and response bodies of the HTTP API, and the server's limits."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

BASE_MODEL_NAME = "base"
MAX_NAME_CHARS = 64  # the longest model name a server can have (sumlab.config.validate_name)
MAX_COMPARE_MODELS = 16  # most models in one /v1/compare request
MAX_LIST_ITEMS = 1024  # most dialogues in one batch request, whatever max_batch_items says


@dataclass(frozen=True)
class ServeLimits:
    """Limits on memory and concurrency; each one is a ``sumlab serve`` option.

    Attributes:
        max_batch_size: most dialogues in one ``model.generate`` call.
        batch_wait_ms: how long the oldest queued dialogue waits for others to batch with.
        max_queue: most dialogues waiting; beyond it requests get 503.
        max_dialogue_chars: longest dialogue accepted (422 beyond it).
        max_body_bytes: largest request body (413 beyond it).
        max_new_tokens_cap: largest ``generation.max_new_tokens`` a request may ask for.
        max_beams_cap: largest ``generation.num_beams`` a request may ask for.
        max_batch_items: most dialogues in one batch request.
        default_max_new_tokens: ``max_new_tokens`` when a request doesn't say.
        max_source_tokens: most tokens a dialogue's prompt may have (422 beyond it, as beyond the model's own
            position limit); a prompt is never cut, as ``summarize`` cuts none by default.
        batching: False runs every dialogue in a ``generate`` call of its own (``--no-batching``).
        drain_timeout_s: on shutdown, how long queued and running dialogues may still take; those left get 503.
    """

    max_batch_size: int = 8
    batch_wait_ms: float = 10.0
    max_queue: int = 256
    max_dialogue_chars: int = 8000
    max_body_bytes: int = 1_048_576
    max_new_tokens_cap: int = 256
    max_beams_cap: int = 4
    max_batch_items: int = 64
    default_max_new_tokens: int = 128
    max_source_tokens: int = 2048  # DialogSum's longest prompt is about 1,900 T5 tokens
    batching: bool = True
    drain_timeout_s: float = 30.0

    def __post_init__(self):
        for name in (
            "max_batch_size",
            "max_queue",
            "max_dialogue_chars",
            "max_body_bytes",
            "max_new_tokens_cap",
            "max_beams_cap",
            "max_batch_items",
            "default_max_new_tokens",
            "max_source_tokens",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("batch_wait_ms", "drain_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number of 0 or more, not {value}")
        if self.max_batch_items > MAX_LIST_ITEMS:
            raise ValueError(f"max_batch_items must be at most {MAX_LIST_ITEMS}, not {self.max_batch_items}")

    @property
    def effective_batch_size(self) -> int:
        return self.max_batch_size if self.batching else 1

    def public(self) -> dict:
        """The limits a client needs to know, as ``GET /v1/models`` reports them."""
        return {
            "max_dialogue_chars": self.max_dialogue_chars,
            "max_body_bytes": self.max_body_bytes,
            "max_new_tokens_cap": self.max_new_tokens_cap,
            "max_beams_cap": self.max_beams_cap,
            "max_batch_items": self.max_batch_items,
            "max_source_tokens": self.max_source_tokens,
            "default_max_new_tokens": min(self.default_max_new_tokens, self.max_new_tokens_cap),
        }


class StrictBody(BaseModel):
    """No unknown keys, and no conversions: ``"4"`` or ``true`` is not an integer."""

    model_config = ConfigDict(extra="forbid", strict=True)


class GenerationOptions(StrictBody):
    """Decoding options of one request: greedy or beam search, never sampling (results are reproducible)."""

    max_new_tokens: int | None = Field(default=None, ge=1, description="at most the server's max_new_tokens_cap")
    num_beams: int | None = Field(default=None, ge=1, description="1 is greedy; at most the server's max_beams_cap")
    no_repeat_ngram_size: int | None = Field(default=None, ge=0, le=10)
    length_penalty: float | None = Field(default=None, ge=-5.0, le=5.0, allow_inf_nan=False)


def _encodable(value: str) -> str:
    """Refuse text that UTF-8 can't encode (a lone surrogate such as ``"\\ud800"``, which JSON allows)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"not valid Unicode: a lone surrogate at character {exc.start} (send text that UTF-8 can encode)"
        ) from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("the dialogue is empty")
    return value


def _short_name(value: str) -> str:
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(f"a model name has at most {MAX_NAME_CHARS} characters, not {len(value)}")
    return value


Text = Annotated[str, AfterValidator(_encodable)]
Dialogue = Annotated[Text, AfterValidator(_not_blank)]
ModelName = Annotated[Text, AfterValidator(_short_name)]


class SummarizeRequest(StrictBody):
    dialogue: Dialogue = Field(description="the dialogue, e.g. '#Person1#: Hi...\\n#Person2#: ...'")
    model: ModelName = Field(default=BASE_MODEL_NAME, description="a name from GET /v1/models")
    generation: GenerationOptions | None = None


class BatchItem(StrictBody):
    dialogue: Dialogue
    model: ModelName | None = Field(default=None, description="default: the request's model")


class BatchRequest(StrictBody):
    """Either ``items`` (each with its own model) or ``dialogues`` (all with ``model``)."""

    items: list[BatchItem] | None = Field(default=None, min_length=1, max_length=MAX_LIST_ITEMS)
    dialogues: list[Dialogue] | None = Field(default=None, min_length=1, max_length=MAX_LIST_ITEMS)
    model: ModelName = BASE_MODEL_NAME
    generation: GenerationOptions | None = None

    @model_validator(mode="after")
    def _items_or_dialogues(self) -> BatchRequest:
        if (self.items is None) == (self.dialogues is None):
            raise ValueError("give either items or dialogues, not both or neither")
        return self

    def entries(self) -> list[tuple[str, str]]:
        """(dialogue, model) pairs in request order."""
        if self.items is not None:
            return [(item.dialogue, item.model or self.model) for item in self.items]
        return [(dialogue, self.model) for dialogue in self.dialogues]


class CompareRequest(StrictBody):
    dialogue: Dialogue
    models: list[ModelName] = Field(
        min_length=1, max_length=MAX_COMPARE_MODELS, description="names from GET /v1/models; each at most once"
    )
    generation: GenerationOptions | None = None

    @field_validator("models")
    @classmethod
    def _unique(cls, models: list[str]) -> list[str]:
        repeated = sorted(name for name, count in Counter(models).items() if count > 1)
        if repeated:
            raise ValueError(f"each model at most once; repeated: {', '.join(repeated)}")
        return models


class TokenCounts(BaseModel):
    input: int = Field(description="prompt tokens: the whole prompt, which the server never cuts")
    output: int = Field(description="generated tokens, the end-of-sequence token included")


class SummaryResult(BaseModel):
    summary: str
    model: str
    latency_ms: float = Field(description="from the request's arrival to this summary being ready")
    tokens: TokenCounts
    batch_size: int = Field(description="dialogues in the generate call that produced this summary")


class BatchResponse(BaseModel):
    results: list[SummaryResult]
    latency_ms: float


class CompareResponse(BaseModel):
    dialogue_chars: int
    results: list[SummaryResult]
    latency_ms: float


class ModelInfo(BaseModel):
    name: str
    kind: Literal["base", "adapter", "merged"]
    method: str | None = Field(description="the PEFT method of an adapter (lora, dora, ia3, ...)")
    mixed_batching: bool = Field(description="shares generate calls with other models of the same base")
    engine: Literal["torch", "ctranslate2"] = Field(description="what generates its summaries (--engine)")
    compute_type: str = Field(description="ctranslate2's compute type (--compute-type), or torch's parameter dtype")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    default: str
    limits: dict


class HealthResponse(BaseModel):
    status: Literal["ok"]
    models: int
    queue_depth: int
    auth: bool


class ErrorResponse(BaseModel):
    error: str
