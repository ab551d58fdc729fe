"""PEFT configs for each method, built with PEFT's own config classes."""

from __future__ import annotations

from peft import IA3Config, LoraConfig, PeftConfig, PrefixTuningConfig, PromptTuningConfig, TaskType
from torch import nn

from sumlab.config import PeftSettings
from sumlab.errors import SumlabError

TARGETED_METHODS = {"lora", "dora", "qlora", "ia3"}


def linear_module_names(model: nn.Module) -> list[str]:
    """The short names (last path part) of the model's linear layers, e.g. q, k, v, o, wi_0, wo."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)})


def check_targets(model: nn.Module, targets: list[str]) -> None:
    """Raise if a target module name matches no linear layer of ``model``."""
    available = linear_module_names(model)
    missing = [target for target in targets if target not in available]
    if missing:
        raise SumlabError(
            f"target modules {missing} are not in the model",
            f"choose from its linear layers: {', '.join(available)}",
        )


def build_peft_config(settings: PeftSettings, model: nn.Module) -> PeftConfig:
    """The PEFT config for ``settings.method``, checked against ``model``'s modules."""
    method = settings.method
    if method in TARGETED_METHODS:
        check_targets(model, settings.targets)
    task = TaskType.SEQ_2_SEQ_LM
    if method in {"lora", "dora", "qlora"}:
        return LoraConfig(
            r=settings.r,
            lora_alpha=settings.alpha,
            target_modules=list(settings.targets),
            lora_dropout=settings.dropout,
            bias=settings.bias,
            use_dora=method == "dora",
            task_type=task,
        )
    if method == "ia3":
        feedforward = list(settings.ia3_feedforward)
        check_targets(model, feedforward)
        return IA3Config(
            target_modules=sorted(set(settings.targets) | set(feedforward)),
            feedforward_modules=feedforward,
            task_type=task,
        )
    if method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=settings.num_virtual_tokens, task_type=task)
    if method == "prompt":
        return PromptTuningConfig(num_virtual_tokens=settings.num_virtual_tokens, task_type=task)
    raise SumlabError(f"unknown PEFT method {method!r}", "use full, lora, dora, qlora, ia3, prefix or prompt")
