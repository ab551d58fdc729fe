"""Typed configuration: one model per concern, loaded from YAML with ``--set`` overrides.

Unknown keys, wrong types and impossible values are errors before anything runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sumlab.errors import SumlabError
from sumlab.models.resolve import require_saved_model
from sumlab.runtime.paths import missing_local_path
from sumlab.text.prompts import check_template, named_template

DEFAULT_DATASET = "knkarthick/dialogsum"
DEFAULT_MODEL = "google/flan-t5-base"

PeftMethod = Literal["full", "lora", "dora", "ia3", "prefix", "prompt", "qlora"]
Family = Literal["seq2seq", "causal"]
Precision = Literal["auto", "float32", "bfloat16", "float16"]
Engine = Literal["torch", "ctranslate2"]
ComputeType = Literal["auto", "float32", "int8", "int8_float32", "bfloat16", "float16", "int8_float16"]


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def validate_name(name: str) -> str:
    """Check that ``name`` can safely become a file or directory name (no separators, no ``..``)."""
    if not name or len(name) > 64 or set(name) - _NAME_CHARS or name.startswith("."):
        raise ValueError(f"invalid name {name!r}: use 1-64 letters, digits, '-', '_' or '.', not starting with '.'")
    return name


SafeName = Annotated[str, AfterValidator(validate_name)]

DEFAULT_HINT = "fix that value in the config or with --set"
SPELLING_HINT = "check the spelling; see configs/ for the known keys"


class ConfigProblem(ValueError):
    """A problem that a config validator found, raised inside pydantic validation.

    It carries what a pydantic error alone can't: the key path below where it was raised (an entry's
    merged train settings are checked by the experiment), the kind of problem, and the hint to show.
    """

    def __init__(self, message: str, hint: str | None = None, loc: Sequence = (), kind: str = "value_error"):
        super().__init__(f"{'.'.join(map(str, loc))}: {message}" if loc else message)
        self.message, self.hint, self.loc, self.kind = message, hint, tuple(loc), kind

    @classmethod
    def of(cls, check: Callable[[], Any], loc: Sequence = ()) -> Any:
        """Run ``check``; a SumlabError it raises becomes a ConfigProblem at ``loc``, with the same hint."""
        try:
            return check()
        except SumlabError as exc:
            raise cls(exc.message, exc.hint, loc) from None

    @classmethod
    def nested(cls, exc: ValidationError, loc: Sequence) -> ConfigProblem:
        """The first problem of a nested validation, at its key path below ``loc``."""
        first = exc.errors()[0]
        return cls(first["msg"].removeprefix("Value error, "), None, (*loc, *first["loc"]), first["type"])


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ColumnMap(StrictModel):
    """Which column of the source holds each field."""

    dialogue: str = "dialogue"
    summary: str = "summary"
    id: str | None = "id"
    topic: str | None = "topic"


class SplitSelection(StrictModel):
    """Which split to read and which of its rows to keep."""

    split: str
    limit: int | None = Field(default=None, gt=0, description="keep at most this many rows")
    every_nth: int = Field(default=1, gt=0, description="keep every n-th row (the lab keeps every 100th)")
    shuffle: bool = False


class DataConfig(StrictModel):
    """Where the dialogues come from: a hub id or a local file or directory (JSONL, CSV, Parquet)."""

    source: str = DEFAULT_DATASET
    columns: ColumnMap = ColumnMap()
    train: SplitSelection = SplitSelection(split="train")
    validation: SplitSelection | None = SplitSelection(split="validation")
    test: SplitSelection = SplitSelection(split="test")
    seed: int = 42


class PromptConfig(StrictModel):
    """A named template, or a template of the user's own that contains ``{dialogue}``."""

    name: str = "lab"
    template: str | None = None

    @field_validator("template")
    @classmethod
    def _template_is_usable(cls, value: str | None) -> str | None:
        """The same check the prompt gets when it is used: one {dialogue} slot and no other."""
        return value if value is None else ConfigProblem.of(lambda: check_template(value))


class ModelConfig(StrictModel):
    """The base model: a hub id or a local directory, or a known architecture at random init."""

    name_or_path: str = DEFAULT_MODEL
    random_init: bool = False
    tokenizer: str | None = Field(default=None, description="tokenizer id or directory, if not the model's")
    dtype: Precision = "auto"
    allow_pickle: bool = False
    family: Literal["auto", "seq2seq", "causal"] = Field(
        default="auto", description="encoder-decoder (T5) or decoder-only; auto reads the model's config"
    )


class PeftSettings(StrictModel):
    """How the trainable model is built: ``full`` or a PEFT method. Defaults are the lab's LoRA."""

    method: PeftMethod = "full"
    r: int = Field(default=32, gt=0)
    alpha: int = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    targets: list[str] | None = Field(
        default=None,
        min_length=1,
        description="module names to adapt; None: the architecture's query and value projections (q, v on T5, as the lab)",
    )
    bias: Literal["none", "all", "lora_only"] = "none"
    num_virtual_tokens: int = Field(default=20, gt=0)
    ia3_feedforward: list[str] | None = Field(
        default=None, description="IA3's feed-forward modules; None: the architecture's (wo on T5)"
    )


class TrainSettings(StrictModel):
    """Optimisation and batching. ``learning_rate=None`` means the method's default (1e-5 full, 1e-3 PEFT)."""

    learning_rate: float | None = Field(default=None, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    num_train_epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, ge=-1)
    per_device_train_batch_size: int = Field(default=8, gt=0)
    per_device_eval_batch_size: int = Field(default=16, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    auto_find_batch_size: bool = False
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    logging_steps: int = Field(default=10, gt=0)
    eval_steps: int | None = Field(default=None, gt=0, description="evaluate every n steps; None: each epoch")
    save_steps: int | None = Field(default=None, gt=0, description="checkpoint every n steps; None: each epoch")
    save_total_limit: int | None = Field(default=2, gt=0)
    eval_rouge: bool = Field(
        default=False, description="also generate (with the generation settings) and score ROUGE at each evaluation"
    )
    early_stopping_patience: int | None = Field(default=None, gt=0)
    metric_for_best_model: str = "eval_loss"
    max_source_length: int = Field(default=512, gt=0)
    max_target_length: int = Field(default=128, gt=0)
    group_by_length: bool = False
    gradient_checkpointing: bool = False
    precision: Precision = "auto"
    seed: int = 42
    tensorboard: bool = True
    mlflow: bool = False
    mlflow_tracking_uri: str | None = None

    @model_validator(mode="after")
    def _rouge_metric_needs_rouge(self) -> TrainSettings:
        if self.metric_for_best_model.removeprefix("eval_").startswith("rouge") and not self.eval_rouge:
            raise ValueError(
                f"metric_for_best_model={self.metric_for_best_model} needs eval_rouge=true; "
                "set train.eval_rouge=true or use eval_loss"
            )
        return self


class GenerationSettings(StrictModel):
    """Decoding settings, shared by zero-shot, evaluation during training and final evaluation."""

    max_new_tokens: int = Field(default=200, gt=0)
    max_source_length: int | None = Field(
        default=None, gt=0, description="longer prompts are cut (None: never, unless the model's positions end sooner)"
    )
    num_beams: int = Field(default=1, gt=0)
    batch_size: int = Field(default=16, gt=0, description="most prompts in one batch")
    max_batch_tokens: int | None = Field(
        default=None, gt=0, description="most padded prompt tokens in one batch (None: batch_size x 512)"
    )
    no_repeat_ngram_size: int = Field(default=0, ge=0)
    length_penalty: float = 1.0
    engine: Engine = Field(
        default="torch", description="torch (the reference) or ctranslate2 (converted once and cached; faster)"
    )
    compute_type: ComputeType = Field(
        default="auto",
        description="ctranslate2's precision; auto: float32 on a CPU, bfloat16 on a GPU that has it (else float32)",
    )

    @model_validator(mode="after")
    def _compute_type_needs_ctranslate2(self) -> GenerationSettings:
        if self.compute_type != "auto" and self.engine != "ctranslate2":
            raise ValueError(
                f"compute_type {self.compute_type} is for engine ctranslate2; set engine: ctranslate2, "
                "or choose torch's precision with the model's dtype"
            )
        return self

    precision: Precision = Field(
        default="auto",
        description="what generate computes in: auto is bf16 autocast where the device has native bf16 (a CPU with "
        "AVX512-BF16 or AMX, a recent GPU), float32 elsewhere; the weights stay in model.dtype",
    )


class PipelineConfig(StrictModel):
    """The sections a training run and an experiment both start with: a name, the base model, the data, the prompt."""

    name: SafeName
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    prompt: PromptConfig = PromptConfig()

    @model_validator(mode="after")
    def _prompt_is_known(self) -> PipelineConfig:
        if self.prompt.template is None:
            ConfigProblem.of(lambda: named_template(self.prompt.name), ("prompt", "name"))
        return self


class TrainConfig(PipelineConfig):
    """Everything ``sumlab train`` needs."""

    name: SafeName = "run"
    peft: PeftSettings = PeftSettings()
    train: TrainSettings = TrainSettings()
    generation: GenerationSettings = GenerationSettings()
    output_dir: str | None = None


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and a YAML-typed value."""
    if "=" not in item:
        raise SumlabError(f"bad override {item!r}", "write --set key.path=value, e.g. --set train.max_steps=10")
    key, raw = item.split("=", 1)
    if not key.strip():
        raise SumlabError(f"bad override {item!r}", "the key before '=' is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, dict):  # "Summary: {dialogue}" reads as a mapping; set sections key by key instead
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of ``data`` with each ``key.path=value`` override set."""
    result = _deep_copy(data)
    for item in overrides:
        path, value = parse_override(item)
        node = result
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SumlabError(f"bad override {item!r}: {part} is not a section", "check the key path")
            node = child
        node[path[-1]] = value
    return result


def _deep_copy(data: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping, with clear errors for a missing file or bad syntax."""
    file = Path(path)
    if not file.is_file():
        raise SumlabError(f"config file not found: {file}", "check the path, or see configs/ for presets")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        raise SumlabError(f"{where}: invalid YAML", "fix the syntax at that line") from None
    except UnicodeDecodeError:
        raise SumlabError(f"{file}: not UTF-8 text", "save the config as UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SumlabError(f"{file}: the config must be a mapping of sections", "see configs/ for examples")
    return data


def build_config(model_type: type[ConfigT], data: dict, source: str = "config") -> ConfigT:
    """Validate ``data`` as ``model_type``, turning the first validation problem into a SumlabError."""
    try:
        return model_type.model_validate(data)
    except ValidationError as exc:
        raise SumlabError(*_describe_validation_error(exc, source, _entry_names(data))) from None


def load_config(model_type: type[ConfigT], path: str | os.PathLike | None, overrides: list[str] = ()) -> ConfigT:
    """Load ``path`` (or the defaults when None), apply overrides, and validate as ``model_type``."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, list(overrides))
    return build_config(model_type, data, str(path) if path else "config")


def _describe_validation_error(exc: ValidationError, source: str, entry_names: Sequence = ()) -> tuple[str, str]:
    """One line (and its hint) for the first problem: ``source: [models[i] (name): ]key: problem``."""
    first = exc.errors()[0]
    loc, kind, message, hint = tuple(first["loc"]), first["type"], first["msg"].removeprefix("Value error, "), None
    problem = (first.get("ctx") or {}).get("error")
    if isinstance(problem, ConfigProblem):
        loc, kind, message, hint = (*loc, *problem.loc), problem.kind, problem.message, problem.hint
    entry, key = _split_entry_loc(loc, entry_names)
    where = f"{source}: {entry}: " if entry else f"{source}: "
    if kind == "extra_forbidden":
        return f"{where}unknown key '{key}'", SPELLING_HINT
    count = len(exc.errors())
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    return f"{where}{key + ': ' if key else ''}{message}{more}", hint or DEFAULT_HINT


def _split_entry_loc(loc: Sequence, entry_names: Sequence = ()) -> tuple[str | None, str]:
    """Split a key path into the model entry it is in, if any, and the key within.

    ``('models', 2, 'train', 'x')`` is ``('models[2] (lora)', 'train.x')`` when entry 2 is named lora;
    ``('peft', 'r')`` is ``(None, 'peft.r')``.
    """
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        index = loc[1]
        name = entry_names[index] if index < len(entry_names) and isinstance(entry_names[index], str) else None
        return f"models[{index}]" + (f" ({name})" if name else ""), ".".join(map(str, loc[2:]))
    return None, ".".join(map(str, loc))


def _entry_names(data: Any) -> list:
    """The names of an experiment's model entries in raw config data (None where an entry has none)."""
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    return [entry.get("name") if isinstance(entry, dict) else getattr(entry, "name", None) for entry in entries]


def to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML, in field order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


class EvalSettings(StrictModel):
    """How the experiment scores and compares its models on the evaluation split."""

    aggregate: Literal["max", "mean"] = Field(default="max", description="multi-reference: max or mean over references")
    bootstrap_samples: int = Field(default=1000, gt=0)
    significance: Literal["paired_bootstrap", "approximate_randomization"] = "paired_bootstrap"
    significance_samples: int = Field(default=10000, gt=0)
    highlight: list[int] = Field(default_factory=lambda: [200], description="eval dialogues shown side by side")
    seed: int = 0


class ModelEntry(StrictModel):
    """One model of an experiment: the zero-shot base, one trained here, or an existing checkpoint/adapter."""

    name: SafeName
    kind: Literal["zero_shot", "train", "pretrained"] = "train"
    label: str | None = None
    peft: PeftSettings | None = None
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of the experiment's train settings")
    path: str | None = Field(default=None, description="for pretrained: a model, adapter or run directory")
    model: ModelConfig | None = Field(default=None, description="this entry's base model, if not the experiment's")

    @model_validator(mode="after")
    def _kind_fields(self) -> ModelEntry:  # the error's location names the entry (models[i] (name))
        if self.kind == "pretrained" and not self.path:
            raise ValueError("kind pretrained needs a path")
        if self.kind != "pretrained" and self.path:
            raise ValueError("path is only for kind pretrained")
        if self.kind == "train" and self.peft is None:
            self.peft = PeftSettings()
        if self.kind != "train" and (self.peft is not None or self.train):
            raise ValueError("peft and train settings are only for kind train")
        return self

    @property
    def method(self) -> str | None:
        return self.peft.method if self.peft else None


class ExperimentConfig(PipelineConfig):
    """Everything ``sumlab run`` needs: a base model (or one per entry), data, and the models to compare.

    It is validated whole at load: each trained model's train settings (the experiment's, with its own
    overrides) too, not only when its stage starts. ``check_paths`` checks the local paths it names.
    """

    name: SafeName = "experiment"
    train: TrainSettings = TrainSettings()
    generation: GenerationSettings = GenerationSettings()
    eval: EvalSettings = EvalSettings()
    models: list[ModelEntry] = Field(
        default_factory=lambda: [
            ModelEntry(name="original", kind="zero_shot", label="zero-shot base"),
            ModelEntry(name="full", peft=PeftSettings(method="full"), label="full fine-tuning"),
            ModelEntry(name="lora", peft=PeftSettings(method="lora"), label="LoRA"),
        ],
        min_length=1,
    )
    output_dir: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        names = [entry.name for entry in self.models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _train_settings_are_valid(self) -> ExperimentConfig:
        """A typo in one model's train section fails at load, not when that model's stage starts."""
        for index, entry in enumerate(self.models):
            if entry.kind == "train":
                try:
                    TrainSettings.model_validate(self._merged_train(entry))
                except ValidationError as exc:
                    raise ConfigProblem.nested(exc, ("models", index, "train")) from None
        return self

    def _merged_train(self, entry: ModelEntry) -> dict:
        """One trained model's train settings, unvalidated: the experiment's, with the entry's overrides."""
        return {**self.train.model_dump(), **entry.train}

    def base_model(self, entry: ModelEntry) -> ModelConfig:
        """The base model of one entry: its own, or the experiment's."""
        return entry.model or self.model

    def train_config(self, entry: ModelEntry) -> TrainConfig:
        """The TrainConfig for one trained model of this experiment."""
        settings = build_config(TrainSettings, self._merged_train(entry), f"models.{entry.name}.train")
        return TrainConfig(
            name=entry.name,
            model=self.base_model(entry),
            data=self.data,
            prompt=self.prompt,
            peft=entry.peft or PeftSettings(),
            train=settings,
            generation=self.generation,
        )

    def check_paths(self) -> None:
        """Check that every local path the experiment names exists, before anything runs or is written.

        The data source, each model's base model and tokenizer, and each pretrained model's path (a model,
        adapter or run directory). Hub ids are not looked up. Kept out of validation, so that a finished
        experiment's config still loads (to compare it) after its inputs moved.

        Raises:
            SumlabError: naming the first entry and field whose path is missing.
        """
        _check_local(self.data.source, "data.source")
        for index, entry in enumerate(self.models):
            where = f"models[{index}] ({entry.name})"
            model, model_where = (entry.model, f"{where}: model") if entry.model else (self.model, "model")
            _check_local(model.name_or_path, f"{model_where}.name_or_path")
            _check_local(model.tokenizer, f"{model_where}.tokenizer")
            if entry.kind == "pretrained":
                try:
                    require_saved_model(entry.path)
                except SumlabError as exc:
                    raise SumlabError(f"{where}: path: {exc.message}", exc.hint) from None


def _check_local(name_or_path: str | None, where: str) -> None:
    """Raise if ``name_or_path`` is a local path (not a hub id) that does not exist."""
    missing = missing_local_path(name_or_path) if name_or_path else None
    if missing is not None:
        raise SumlabError(f"{where}: path not found: {missing}", "check the path, or give a hub id")
