"""PEFT configs for each method, built with PEFT's own config classes, for either model family."""

from __future__ import annotations

from peft import (
    IA3Config,
    LoraConfig,
    PeftConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    TaskType,
)
from peft.utils import (
    TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING,
    TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
)
from torch import nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from sumlab.config import PeftSettings
from sumlab.errors import SumlabError
from sumlab.models.family import is_causal

TARGETED_METHODS = {"lora", "dora", "qlora", "ia3"}
ADAPTABLE_LAYERS = (nn.Linear, Conv1D)  # GPT-2 writes its projections as Conv1D


def adaptable_module_names(model: nn.Module) -> list[str]:
    """The full names of the model's linear layers (e.g. ``decoder.block.0.layer.0.SelfAttention.q``)."""
    return [name for name, module in model.named_modules() if isinstance(module, ADAPTABLE_LAYERS)]


def linear_module_names(model: nn.Module) -> list[str]:
    """The short names (last path part) of the model's linear layers, e.g. q, k, v, o, wi_0, wo or q_proj."""
    return sorted({name.rsplit(".", 1)[-1] for name in adaptable_module_names(model)})


def check_targets(model: nn.Module, targets: list[str]) -> None:
    """Raise if a target name (a short name, or a dotted suffix such as ``mlp.c_proj``) matches no linear layer."""
    names = adaptable_module_names(model)
    missing = [target for target in targets if not any(n == target or n.endswith("." + target) for n in names)]
    if missing:
        raise SumlabError(
            f"target modules {missing} are not in the model ({model.config.model_type})",
            f"choose from its linear layers: {', '.join(linear_module_names(model))}",
        )


def default_targets(model: nn.Module) -> list[str]:
    """The architecture's attention query and value projections: q, v on T5 (the lab's), q_proj, v_proj on Llama."""
    model_type = model.config.model_type
    if model_type not in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        raise SumlabError(
            f"no default adapter targets for the {model_type} architecture",
            f"set peft.targets to some of its linear layers: {', '.join(linear_module_names(model))}",
        )
    return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])


def default_feedforward(model: nn.Module) -> list[str]:
    """IA3's feed-forward modules for the architecture: wo on T5, down_proj on Llama."""
    found = TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model.config.model_type)
    if not found:
        raise SumlabError(
            f"no default IA3 feed-forward modules for the {model.config.model_type} architecture",
            "set peft.ia3_feedforward to its feed-forward output layer",
        )
    return list(found)


def task_type(model: nn.Module) -> TaskType:
    """PEFT's task type for the model's family."""
    return TaskType.CAUSAL_LM if is_causal(model) else TaskType.SEQ_2_SEQ_LM


def build_peft_config(settings: PeftSettings, model: nn.Module) -> PeftConfig:
    """The PEFT config for ``settings.method``, checked against ``model``'s modules."""
    method = settings.method
    targets = list(settings.targets) if settings.targets else []
    if method in TARGETED_METHODS:
        targets = targets or default_targets(model)
        check_targets(model, targets)
    task = task_type(model)
    if method in {"lora", "dora", "qlora"}:
        return LoraConfig(
            r=settings.r,
            lora_alpha=settings.alpha,
            target_modules=targets,
            lora_dropout=settings.dropout,
            bias=settings.bias,
            use_dora=method == "dora",
            fan_in_fan_out=any(
                isinstance(module, Conv1D) for module in model.modules()
            ),  # GPT-2's weights are (in, out)
            task_type=task,
        )
    if method == "ia3":
        feedforward = list(settings.ia3_feedforward or default_feedforward(model))
        check_targets(model, feedforward)
        return IA3Config(
            target_modules=sorted(set(targets) | set(feedforward)),
            feedforward_modules=feedforward,
            task_type=task,
        )
    if method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=settings.num_virtual_tokens, task_type=task)
    if method == "prompt":
        return PromptTuningConfig(num_virtual_tokens=settings.num_virtual_tokens, task_type=task)
    raise SumlabError(f"unknown PEFT method {method!r}", "use full, lora, dora, qlora, ia3, prefix or prompt")


def add_peft(model: PreTrainedModel, settings: PeftSettings) -> nn.Module:
    """Wrap ``model`` for ``settings.method``; ``full`` returns the model itself, all of it trainable."""
    if settings.method == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    peft_config = build_peft_config(settings, model)
    return get_peft_model(model, peft_config)
