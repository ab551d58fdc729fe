"""The models one server answers with: a base loaded once, adapters attached to it, merged models.

LoRA adapters all attach to the one base through PEFT's multi-adapter support, and a single
``generate`` call can serve dialogues for different LoRA adapters and the base at once: PEFT's
``adapter_names`` argument routes each row of the batch through its own adapter (``__base__`` for
none), for encoder-decoder models too, greedy and beam search. ``load_registry`` checks that on
each adapter at startup and falls back to one call per adapter where it fails.

What PEFT can't mix in one call is served one adapter at a time:
- DoRA adapters (PEFT refuses ``adapter_names`` for them) share the LoRA base, activated in turn;
- IA3, prefix and prompt tuning adapters get one more copy of the base per method, because one
  PEFT model holds adapters of a single method;
- a merged model (``--merged``) is a network of its own.

With ``engine="ctranslate2"`` every model is a CTranslate2 engine of its own: the base converted, each
adapter merged into the base and converted (prefix and prompt tuning can't be merged, and are refused
before anything converts), each merged model converted. ``ModelRunner`` holds either a torch network or
an engine, and ``generate_from_ids`` dispatches between them.

Prompts are encoded once, when a request is admitted (``ModelRunner.encode``), and never cut: the app
refuses a prompt over ``ModelRunner.source_limit`` with a 422.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from sumlab.config import ComputeType, Engine, GenerationSettings, ModelConfig, validate_name
from sumlab.errors import SumlabError
from sumlab.generation.batching import _prefix_in_cache, generate_from_ids, is_engine, model_source_limit
from sumlab.models.adapters import (
    adapter_base_model,
    attach_adapter,
    probe_logits,
    resolve_adapter_dir,
)
from sumlab.models.family import is_causal
from sumlab.models.loading import load_model, load_tokenizer
from sumlab.models.resolve import find_saved_model, read_adapter_config, refuse_adapter_as_base
from sumlab.serve.schemas import BASE_MODEL_NAME
from sumlab.text.encoding import position_limit, prompt_ids
from sumlab.text.prompts import TEMPLATES, check_template

log = logging.getLogger(__name__)

PEFT_BASE_ROUTE = "__base__"  # PEFT's adapter name for "no adapter" in a mixed batch
RESERVED_NAMES = {BASE_MODEL_NAME, PEFT_BASE_ROUTE}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model")
METHOD_NAMES = {"LORA": "lora", "IA3": "ia3", "PREFIX_TUNING": "prefix", "PROMPT_TUNING": "prompt"}
PROBE_TEXT = (
    "Summarize the following conversation.\n\n#Person1#: Is the bus late?\n#Person2#: Yes, ten minutes.\n\nSummary: "
)


@dataclass(frozen=True)
class NamedPath:
    """One ``NAME=PATH`` option value."""

    name: str
    path: Path


def parse_named_path(item: str, option: str) -> NamedPath:
    """Parse ``NAME=PATH`` of ``option`` (``--adapter``, ``--merged``); the name must be safe, the path exist.

    Raises:
        SumlabError: for a missing ``=``, an unsafe or reserved name, or a path that doesn't exist.
    """
    if "=" not in item:
        raise SumlabError(f"bad {option} {item!r}", f"write {option} NAME=PATH, e.g. {option} lora=runs/tiny-lora")
    name, raw_path = (part.strip() for part in item.split("=", 1))
    try:
        validate_name(name)
    except ValueError as exc:
        raise SumlabError(
            f"{option} {item!r}: {exc}", "the name appears in URLs and requests; keep it simple"
        ) from None
    if name in RESERVED_NAMES:
        raise SumlabError(f"{option} {item!r}: the name {name!r} is reserved for the base model", "choose another name")
    if not raw_path:
        raise SumlabError(f"{option} {item!r}: the path is empty", f"write {option} NAME=PATH")
    path = Path(raw_path).expanduser()
    if not path.exists():
        raise SumlabError(
            f"{option} {name}: path not found: {path}", "give a run directory or the model directory in it"
        )
    return NamedPath(name=name, path=path)


def check_unique_names(entries: Sequence[NamedPath]) -> None:
    """Raise if two ``--adapter``/``--merged`` options share a name."""
    names = [entry.name for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SumlabError(f"model names must be unique; repeated: {', '.join(repeated)}", "rename one of them")


@dataclass(frozen=True)
class Generated:
    """One generated summary and its token counts."""

    text: str
    input_tokens: int
    output_tokens: int


class StopWhen(StoppingCriteria):
    """Stop generating for every row once ``should_stop()`` is true (checked after each new token)."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.should_stop(), dtype=torch.bool, device=input_ids.device)


# One lock for every prompt encoding: the models of a server share tokenizers, and a Rust tokenizer used from two
# threads at once can fail ("Already borrowed"); requests are encoded in threads (``ServerState.admit``).
_ENCODING = threading.Lock()


class ModelRunner:
    """One model in memory and its tokenizer: a torch network (the base, perhaps with PEFT adapters, or a merged
    model) or a generation engine (``sumlab.generation.ctranslate2_engine.CTranslate2Engine``)."""

    def __init__(self, module, tokenizer):
        self.module, self.tokenizer = module, tokenizer
        if not is_engine(module):
            module.eval()

    @property
    def is_peft(self) -> bool:
        return hasattr(self.module, "peft_config")

    @property
    def engine(self) -> str:
        return "ctranslate2" if is_engine(self.module) else "torch"

    @property
    def compute_type(self) -> str:
        """The engine's compute type, or the torch network's parameter dtype (``float32``, ``bfloat16``)."""
        if is_engine(self.module):
            return self.module.compute_type
        return str(next(self.module.parameters()).dtype).removeprefix("torch.")

    @property
    def positions(self) -> int | None:
        """How many token positions the model reads (None: no limit, as T5's relative positions)."""
        config = getattr(self.module, "config", None)
        return position_limit(
            getattr(config, "model_type", None),
            getattr(config, "max_position_embeddings", None),
            getattr(self.tokenizer, "model_max_length", None),
        )

    def activate(self, adapter: str) -> None:
        """Make ``adapter`` the active one, for methods that can't be routed per row."""
        if self.module.active_adapter != adapter:
            self.module.set_adapter(adapter)

    def encode(self, prompt: str) -> list[int]:
        """The whole prompt's token ids, as ``summarize`` encodes it (never cut)."""
        # the prompt is already filled in: "{dialogue}" passes it through (a causal model adds its chat format)
        with _ENCODING:
            return prompt_ids(self.tokenizer, "{dialogue}", [prompt], None, is_causal(self.module))[0]

    def source_limit(self, settings: GenerationSettings) -> int | None:
        """The most prompt tokens this model is given: ``settings.max_source_length``, within its positions."""
        return model_source_limit(self.module, self.tokenizer, settings)

    @torch.inference_mode()
    def generate(
        self,
        batch: Sequence[Sequence[int]],
        settings: GenerationSettings,
        adapter_names: Sequence[str] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Generated]:
        """Generate one summary per prompt (token ids, from ``encode``) in one call, exactly as ``summarize`` would.

        Args:
            adapter_names: one PEFT adapter per prompt (``__base__`` for none), for mixed LoRA batches.
            should_stop: checked after each token; once true, the call ends early (its summaries are cut short).
                An engine's call runs to its end.
        """
        routing = {"adapter_names": list(adapter_names)} if adapter_names is not None else {}
        if should_stop is not None and not is_engine(self.module):
            routing["stopping_criteria"] = StoppingCriteriaList([StopWhen(should_stop)])
        with _prefix_in_cache(self.module):
            texts, output_counts = generate_from_ids(self.module, self.tokenizer, batch, settings, **routing)
        return [Generated(text, len(ids), int(count)) for text, ids, count in zip(texts, batch, output_counts)]


@dataclass(frozen=True)
class ServedModel:
    """A name a request can ask for, and how to run it.

    Attributes:
        runner: the network it runs on.
        route: its PEFT adapter name on that network (``__base__`` for the base), or None for a plain network.
        mixed: True when it can share a ``generate`` call with the other mixed models of its runner.
        template: the prompt template it was trained with.
    """

    name: str
    kind: str  # base, adapter or merged
    method: str | None
    runner: ModelRunner
    route: str | None
    mixed: bool
    template: str

    def batch_group(self) -> tuple:
        """Models with the same group can run in one ``generate`` call."""
        return (id(self.runner), None if self.mixed else self.name)

    def info(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "mixed_batching": self.mixed,
            "engine": self.runner.engine,
            "compute_type": self.runner.compute_type,
        }


class ModelRegistry:
    """The served models by name; ``base`` is always one of them."""

    def __init__(self, models: Sequence[ServedModel]):
        self._models = {model.name: model for model in models}

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def get(self, name: str) -> ServedModel | None:
        return self._models.get(name)

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


def load_registry(
    base: ModelConfig,
    adapters: Sequence[NamedPath] = (),
    merged: Sequence[NamedPath] = (),
    template: str = TEMPLATES["lab"],
    engine: Engine = "torch",
    compute_type: ComputeType = "auto",
) -> ModelRegistry:
    """Load the base once, attach every adapter, load every merged model.

    Args:
        base: the base model (the adapters must have been trained on it).
        adapters: ``--adapter`` values: run directories or adapter directories (safetensors only,
            unless ``base.allow_pickle``).
        merged: ``--merged`` values: merged or fully fine-tuned model directories, or their run directories.
        template: the prompt of the base, and of any model whose run recorded no prompt.
        engine: ``torch``, or ``ctranslate2`` to serve each model as an engine of its own (``load_engine_registry``).
        compute_type: the engine's compute type (``ctranslate2`` only).
    """
    check_unique_names([*adapters, *merged])
    refuse_adapter_as_base(
        base.name_or_path, "serving", "serve its base as --model and the adapter with --adapter NAME=PATH"
    )
    if engine == "ctranslate2":
        return load_engine_registry(base, adapters, merged, template, compute_type)
    tokenizer = load_tokenizer(base)
    primary = load_model(base)
    networks: dict[str, object] = {}  # PEFT type -> the network holding adapters of that type
    attached: list[tuple[NamedPath, Path, dict]] = []
    for entry in adapters:
        adapter_dir = resolve_adapter_dir(entry.path)
        adapter_config = read_adapter_config(adapter_dir)
        _check_same_tokenizer(adapter_dir, tokenizer, entry.name)
        _warn_other_base(adapter_dir, base.name_or_path, entry.name)
        peft_type = adapter_config.get("peft_type", "")
        if peft_type in networks:
            host = networks[peft_type]
        else:  # LoRA adapters share the base; another method gets a copy of its own
            host = primary if peft_type == "LORA" else load_model(base)
        networks[peft_type] = attach_adapter(host, adapter_dir, entry.name, allow_pickle=base.allow_pickle)
        attached.append((entry, adapter_dir, adapter_config))

    runners = {id(network): ModelRunner(network, tokenizer) for network in networks.values()}
    base_network = networks.get("LORA", primary)
    base_runner = runners.get(id(base_network)) or ModelRunner(primary, tokenizer)
    models = [
        ServedModel(
            BASE_MODEL_NAME, "base", None, base_runner, PEFT_BASE_ROUTE if base_runner.is_peft else None, True, template
        )
    ]
    for entry, adapter_dir, adapter_config in attached:
        peft_type = adapter_config.get("peft_type", "")
        runner = runners[id(networks[peft_type])]
        mixed = peft_type == "LORA" and not adapter_config.get("use_dora") and _mixed_batch_agrees(runner, entry.name)
        method = method_name(adapter_config)
        models.append(
            ServedModel(
                entry.name, "adapter", method, runner, entry.name, mixed, recorded_template(adapter_dir) or template
            )
        )
    for entry in merged:
        model_dir = resolve_model_dir(entry.path)
        merged_config = base.model_copy(
            update={"name_or_path": str(model_dir), "random_init": False, "tokenizer": None}
        )
        own_tokenizer = load_tokenizer(merged_config) if _has_tokenizer(model_dir) else tokenizer
        runner = ModelRunner(load_model(merged_config), own_tokenizer)
        models.append(
            ServedModel(entry.name, "merged", None, runner, None, False, recorded_template(model_dir) or template)
        )
    return ModelRegistry(models)


def load_engine_registry(
    base: ModelConfig,
    adapters: Sequence[NamedPath],
    merged: Sequence[NamedPath],
    template: str,
    compute_type: ComputeType = "auto",
) -> ModelRegistry:
    """Every model as a CTranslate2 engine of its own, converted once (``sumlab.generation.conversion``'s cache).

    The base is converted; each adapter is merged into it and converted; each merged model is converted. Every
    adapter is checked first (prefix and prompt tuning can't be merged), so a refusal comes before any
    conversion. Each model runs alone in its ``generate`` calls: engines have no per-row adapter routing.

    Raises:
        SumlabError: ctranslate2 is missing, the compute type does not suit this machine, a model can't be
            converted or an adapter can't be merged.
    """
    from sumlab.generation.conversion import check_convertible, conversion_source
    from sumlab.generation.ctranslate2_engine import load_engine, pick_ct2_device, resolve_compute_type

    concrete = resolve_compute_type(compute_type, pick_ct2_device())
    adapter_dirs = [resolve_adapter_dir(entry.path) for entry in adapters]
    adapter_configs = [_adapter_model_config(base, directory) for directory in adapter_dirs]
    for config in adapter_configs:
        check_convertible(conversion_source(config, adapter_base=base.name_or_path), concrete)
    engine, tokenizer = load_engine(base, compute_type)
    models = [ServedModel(BASE_MODEL_NAME, "base", None, ModelRunner(engine, tokenizer), None, False, template)]
    for entry, adapter_dir, config in zip(adapters, adapter_dirs, adapter_configs):
        _check_same_tokenizer(adapter_dir, tokenizer, entry.name)
        _warn_other_base(adapter_dir, base.name_or_path, entry.name)
        runner = ModelRunner(*load_engine(config, compute_type, adapter_base=base.name_or_path))
        method = method_name(read_adapter_config(adapter_dir))
        own_template = recorded_template(adapter_dir) or template
        models.append(ServedModel(entry.name, "adapter", method, runner, None, False, own_template))
    for entry in merged:
        model_dir = resolve_model_dir(entry.path)
        merged_config = base.model_copy(
            update={
                "name_or_path": str(model_dir),
                "random_init": False,
                "tokenizer": None if _has_tokenizer(model_dir) else base.tokenizer or base.name_or_path,
            }
        )
        runner = ModelRunner(*load_engine(merged_config, compute_type))
        models.append(
            ServedModel(entry.name, "merged", None, runner, None, False, recorded_template(model_dir) or template)
        )
    return ModelRegistry(models)


def _adapter_model_config(base: ModelConfig, adapter_dir: Path) -> ModelConfig:
    """The ModelConfig of an adapter to convert: its directory, with the base's tokenizer, dtype and pickle options."""
    return base.model_copy(update={"name_or_path": str(adapter_dir), "random_init": False})


def method_name(adapter_config: dict) -> str:
    """The PEFT method of an adapter as ``/v1/models`` reports it: lora, dora, ia3, prefix, prompt."""
    peft_type = adapter_config.get("peft_type", "")
    return "dora" if adapter_config.get("use_dora") else METHOD_NAMES.get(peft_type, peft_type.lower())


def resolve_model_dir(path: str | Path) -> Path:
    """The full model directory of ``path``: the directory itself, or the ``model/`` of a run directory."""
    found = find_saved_model(path)
    if found.kind == "model":
        return found.directory
    if found.kind == "adapter":
        raise SumlabError(f"{found.directory} holds an adapter, not a full model", "serve it with --adapter NAME=PATH")
    raise SumlabError(
        f"no config.json in {found.directory}", "give a merged model (sumlab merge --out) or a full fine-tuning run"
    )


def recorded_template(model_dir: Path) -> str | None:
    """The prompt a run was trained with (``prompt.txt`` beside or above its ``model/``), if it recorded one."""
    candidates = [model_dir / "prompt.txt"]
    if model_dir.name == "model":
        candidates.append(model_dir.parent / "prompt.txt")
    for candidate in candidates:
        if candidate.is_file():
            return check_template(candidate.read_text(encoding="utf-8-sig"))
    return None


def _has_tokenizer(model_dir: Path) -> bool:
    return any((model_dir / name).is_file() for name in TOKENIZER_FILES)


def _check_same_tokenizer(adapter_dir: Path, base_tokenizer, name: str) -> None:
    """Refuse an adapter saved with another tokenizer than the base's: its ids would mean other words."""
    if not _has_tokenizer(adapter_dir):
        return
    own = load_tokenizer(ModelConfig(name_or_path=str(adapter_dir)))
    if own.get_vocab() != base_tokenizer.get_vocab():
        raise SumlabError(
            f"adapter {name}: its tokenizer differs from the base model's",
            "serve it with the base model it was trained on (--model)",
        )


def _warn_other_base(adapter_dir: Path, base_name: str, name: str) -> None:
    recorded = adapter_base_model(adapter_dir)
    if recorded and Path(recorded).name != Path(base_name.rstrip("/")).name:
        log.warning("adapter %s was trained on %s, and is served on %s", name, recorded, base_name)


@torch.inference_mode()
def _mixed_batch_agrees(runner: ModelRunner, adapter: str) -> bool:
    """True when routing ``adapter`` per row (``adapter_names``) gives the logits of activating it."""
    module, tokenizer = runner.module, runner.tokenizer
    previous = module.active_adapter
    try:
        routed = probe_logits(module, tokenizer, PROBE_TEXT, adapter_names=[adapter])
        runner.activate(adapter)
        active = probe_logits(module, tokenizer, PROBE_TEXT)
    except (TypeError, ValueError) as exc:
        log.warning("adapter %s can't share batches with others (%s): served one at a time", adapter, exc)
        return False
    finally:
        runner.activate(previous)
    if not torch.allclose(routed, active, atol=1e-5, rtol=1e-4):
        log.warning("adapter %s gives other outputs in mixed batches: served one at a time", adapter)
        return False
    return True
