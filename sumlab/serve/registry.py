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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from sumlab.config import GenerationSettings, ModelConfig, validate_name
from sumlab.errors import SumlabError
from sumlab.generation.batching import _prefix_in_cache, generate_from_ids
from sumlab.models.adapters import (
    adapter_base_model,
    attach_adapter,
    probe_logits,
    resolve_adapter_dir,
)
from sumlab.models.family import is_causal
from sumlab.models.loading import load_model, load_tokenizer
from sumlab.models.resolve import find_saved_model, read_adapter_config
from sumlab.serve.schemas import BASE_MODEL_NAME
from sumlab.text.encoding import prompt_ids
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


class ModelRunner:
    """One network in memory (the base, perhaps with PEFT adapters, or a merged model) and its tokenizer."""

    def __init__(self, module, tokenizer):
        self.module, self.tokenizer = module, tokenizer
        self.device = next(module.parameters()).device
        module.eval()

    @property
    def is_peft(self) -> bool:
        return hasattr(self.module, "peft_config")

    def activate(self, adapter: str) -> None:
        """Make ``adapter`` the active one, for methods that can't be routed per row."""
        if self.module.active_adapter != adapter:
            self.module.set_adapter(adapter)

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        adapter_names: Sequence[str] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Generated]:
        """Generate one summary per prompt in one ``generate`` call, exactly as ``summarize`` would.

        Args:
            adapter_names: one PEFT adapter per prompt (``__base__`` for none), for mixed LoRA batches.
            should_stop: checked after each token; once true, the call ends early (its summaries are cut short).
        """
        # the prompts are already filled in: "{dialogue}" passes each through (a causal model adds its chat format)
        encoded = prompt_ids(self.tokenizer, "{dialogue}", prompts, settings.max_source_length, is_causal(self.module))
        routing = {"adapter_names": list(adapter_names)} if adapter_names is not None else {}
        if should_stop is not None:
            routing["stopping_criteria"] = StoppingCriteriaList([StopWhen(should_stop)])
        with _prefix_in_cache(self.module):
            texts, output_counts = generate_from_ids(self.module, self.tokenizer, encoded, settings, **routing)
        return [Generated(text, len(ids), int(count)) for text, ids, count in zip(texts, encoded, output_counts)]


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
        return {"name": self.name, "kind": self.kind, "method": self.method, "mixed_batching": self.mixed}


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
) -> ModelRegistry:
    """Load the base once, attach every adapter, load every merged model.

    Args:
        base: the base model (the adapters must have been trained on it).
        adapters: ``--adapter`` values: run directories or adapter directories (safetensors only,
            unless ``base.allow_pickle``).
        merged: ``--merged`` values: merged or fully fine-tuned model directories, or their run directories.
        template: the prompt of the base, and of any model whose run recorded no prompt.
    """
    check_unique_names([*adapters, *merged])
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
        method = "dora" if adapter_config.get("use_dora") else METHOD_NAMES.get(peft_type, peft_type.lower())
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
            return check_template(candidate.read_text(encoding="utf-8"))
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
