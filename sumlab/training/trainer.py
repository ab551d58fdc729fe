"""``train(config)``: full fine-tuning and every PEFT method through one path, on Seq2SeqTrainer.

The only difference between methods is how the model is built (``build_trainable_model``); the
trainer, batching, evaluation, checkpoints and run directory are the same for all of them.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    set_seed,
)

from sumlab.config import TrainConfig, to_yaml
from sumlab.data.loading import load_selection
from sumlab.errors import SumlabError
from sumlab.evaluation.rouge import ROUGE_KEYS, rouge_per_example
from sumlab.evaluation.schema import RunSummary
from sumlab.generation.batching import generation_kwargs
from sumlab.models.family import is_causal, model_family
from sumlab.models.loading import load_model, load_tokenizer
from sumlab.models.parameters import count_parameters, size_on_disk
from sumlab.models.peft_methods import add_peft
from sumlab.models.resolve import refuse_adapter_as_base
from sumlab.runtime.distributed import (
    distributed_state,
    run_on_main,
    timeout_seconds,
    use_cpu_backend,
)
from sumlab.runtime.fileio import write_json_atomic, write_text_atomic
from sumlab.runtime.memory import peak_memory
from sumlab.runtime.precision import uses_bf16, warn_if_emulated_bf16
from sumlab.runtime.progress import trainer_logs_shown
from sumlab.text.features import (
    LABEL_PAD,
    TruncationCounts,
    dynamic_padding_collator,
    tokenize_examples,
)
from sumlab.text.prompts import resolve_template
from sumlab.training.callbacks import (
    JsonlLogCallback,
    ProgressDisplayCallback,
    tensorboard_callback,
)
from sumlab.training.checkpoints import (
    AtomicCheckpointsMixin,
    check_resume_world_size,
    check_sharded_evaluation,
    checkpoint_step,
    resume_checkpoint,
    save_trained_model,
)
from sumlab.training.loss import TokenMeanLossTrainer
from sumlab.training.run_dir import RunPaths, check_run_dir, prepare_run_dir, trim_log
from sumlab.training.tracking import mlflow_callback

log = logging.getLogger(__name__)

DEFAULT_LEARNING_RATES = {"full": 1e-5}  # the lab's; every PEFT method defaults to the lab's LoRA rate
DEFAULT_PEFT_LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class TrainResult:
    """Where a run wrote its artifacts, and its final metrics."""

    run_dir: Path
    model_dir: Path
    metrics: dict
    summary: dict


def effective_learning_rate(config: TrainConfig) -> float:
    """The configured learning rate, or the method's default (the lab's 1e-5 full, 1e-3 PEFT)."""
    if config.train.learning_rate is not None:
        return config.train.learning_rate
    return DEFAULT_LEARNING_RATES.get(config.peft.method, DEFAULT_PEFT_LEARNING_RATE)


def resolve_config(config: TrainConfig) -> TrainConfig:
    """A copy of ``config`` with defaults that depend on other fields filled in."""
    resolved = config.model_copy(deep=True)
    resolved.train.learning_rate = effective_learning_rate(config)
    return resolved


def check_environment(config: TrainConfig) -> None:
    """Refuse what this machine can't run, before anything is loaded."""
    if config.peft.method == "qlora" and not torch.cuda.is_available():
        raise SumlabError("qlora needs a CUDA GPU (4-bit bitsandbytes kernels)", "use method lora on this machine")
    if config.train.precision == "bfloat16":
        warn_if_emulated_bf16()  # allowed anywhere: bf16 autocast on a CPU without bf16 instructions is only slow
    if config.train.precision == "float16":
        raise SumlabError(
            "train.precision=float16 is not supported: T5's activations overflow fp16's range (NaN/inf), and "
            "bf16 is the half precision that trains safely for every model",
            "use train.precision=bfloat16 (auto picks it where the CPU or GPU computes bf16 natively), or float32",
        )
    check_sharded_evaluation(config.train)
    check_checkpoint_steps(config)
    if config.train.eval_rouge and model_family(config.model) == "causal":
        raise SumlabError(
            "train.eval_rouge=true is for seq2seq models: a causal model's evaluation batches hold the summaries",
            "set train.eval_rouge=false (the evaluation loss still runs) and score ROUGE after training with sumlab run",
        )


def check_checkpoint_steps(config: TrainConfig) -> None:
    """Keeping the best checkpoint needs a checkpoint at every evaluation: save_steps a multiple of eval_steps."""
    settings = config.train
    if config.data.validation is None or not (settings.eval_steps and settings.save_steps):
        return
    if settings.save_steps % settings.eval_steps:
        raise SumlabError(
            f"train.save_steps={settings.save_steps} is not a multiple of train.eval_steps={settings.eval_steps}, "
            "so the best checkpoint could not be kept",
            f"set train.save_steps to a multiple of {settings.eval_steps} (or leave it unset to save at each evaluation)",
        )


def build_trainable_model(config: TrainConfig):
    """The base model with the configured method applied: the one place where methods differ."""
    refuse_adapter_as_base(
        config.model.name_or_path,
        "training",
        "train from its base model, or merge it first (sumlab merge --adapter PATH --out DIR) and train from DIR",
    )
    if config.peft.method == "qlora":
        from sumlab.models.quantized import load_4bit_model

        base = load_4bit_model(config.model)
    else:
        base = load_model(config.model.model_copy(update={"dtype": "float32"}), device=torch.device("cpu"))
    return add_peft(base, config.peft)


def build_datasets(
    config: TrainConfig, tokenizer, template: str, causal: bool = False
) -> tuple[Dataset, Dataset | None, dict]:
    """Tokenized train and validation sets (for a seq2seq or a causal model), and how many were truncated."""
    train_settings = config.train
    tokenize = functools.partial(
        tokenize_examples,
        tokenizer=tokenizer,
        template=template,
        causal=causal,
        max_source_length=train_settings.max_source_length,
        max_target_length=train_settings.max_target_length,
    )
    train_features, train_counts = tokenize(load_selection(config.data, "train"))
    truncation = {"train": _truncation_json(train_counts)}
    eval_set = None
    if config.data.validation is not None:
        eval_features, eval_counts = tokenize(load_selection(config.data, "validation"))
        eval_set = Dataset.from_list(eval_features)
        truncation["validation"] = _truncation_json(eval_counts)
    for split, counts in truncation.items():
        if counts["sources"] or counts["targets"]:
            log.warning(
                "%s: %d of %d sources and %d targets truncated at %d / %d tokens",
                split,
                counts["sources"],
                counts["examples"],
                counts["targets"],
                train_settings.max_source_length,
                train_settings.max_target_length,
            )
    return Dataset.from_list(train_features), eval_set, truncation


def _truncation_json(counts: TruncationCounts) -> dict:
    return {"sources": counts.sources, "targets": counts.targets, "examples": counts.examples}


def training_arguments(config: TrainConfig, paths: RunPaths, has_eval: bool, tokenizer) -> Seq2SeqTrainingArguments:
    """Seq2SeqTrainingArguments that map the typed config one to one."""
    settings = config.train
    eval_strategy = "no" if not has_eval else ("steps" if settings.eval_steps else "epoch")
    save_strategy = "steps" if (settings.save_steps or settings.eval_steps) else "epoch"
    lower_is_better = settings.metric_for_best_model.endswith("loss")
    bf16 = uses_bf16(settings.precision)  # autocast: the weights, gradients and AdamW states stay float32
    return Seq2SeqTrainingArguments(
        output_dir=str(paths.checkpoints),
        learning_rate=effective_learning_rate(config),
        weight_decay=settings.weight_decay,
        num_train_epochs=settings.num_train_epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        per_device_eval_batch_size=settings.per_device_eval_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        auto_find_batch_size=settings.auto_find_batch_size,
        warmup_steps=settings.warmup_ratio,
        lr_scheduler_type=settings.lr_scheduler_type,
        logging_steps=settings.logging_steps,
        eval_strategy=eval_strategy,
        eval_steps=settings.eval_steps,
        save_strategy=save_strategy,
        save_steps=settings.save_steps or settings.eval_steps or 500,
        save_total_limit=settings.save_total_limit,
        load_best_model_at_end=has_eval and save_strategy == eval_strategy,
        metric_for_best_model=settings.metric_for_best_model,
        greater_is_better=not lower_is_better,
        predict_with_generate=settings.eval_rouge,
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        gradient_checkpointing=settings.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if settings.gradient_checkpointing else None,
        bf16=bf16,
        seed=settings.seed,
        data_seed=settings.seed,
        report_to="none",
        disable_tqdm=True,  # sumlab draws its own bar (ProgressDisplayCallback)
        save_only_model=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        # several processes on CPUs: DDP over gloo (otherwise each would train alone); bf16 autocast on a CPU
        use_cpu=use_cpu_backend() or (bf16 and not torch.cuda.is_available()),
        ddp_timeout=timeout_seconds(),
    )


def set_generation_defaults(model, settings, tokenizer) -> None:
    """Make evaluation during training decode exactly as the final evaluation does.

    The settings go on the underlying model's generation config, which a PEFT wrapper delegates to.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.generation_config.update(**generation_kwargs(settings, tokenizer, base))


def rouge_from_predictions(eval_prediction, tokenizer) -> dict[str, float]:
    """ROUGE F-measures (0-100) of generated ids against label ids, for evaluation during training."""
    predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
    predictions = np.where(predictions == LABEL_PAD, tokenizer.pad_token_id, predictions)
    labels = np.where(labels == LABEL_PAD, tokenizer.pad_token_id, labels)
    decoded = [text.strip() for text in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
    references = [text.strip() for text in tokenizer.batch_decode(labels, skip_special_tokens=True)]
    scores = rouge_per_example(decoded, references)
    return {key: round(float(scores[key].mean()) * 100, 4) for key in ROUGE_KEYS}


class SumlabTrainer(AtomicCheckpointsMixin, TokenMeanLossTrainer):
    """The token-mean-loss trainer whose checkpoints appear whole or not at all (see AtomicCheckpointsMixin)."""


def build_trainer(config, model, tokenizer, train_set, eval_set, paths: RunPaths) -> Seq2SeqTrainer:
    """The Seq2SeqTrainer for this run, with sumlab's log, progress, TensorBoard and early-stopping callbacks.

    The Trainer's log dicts go to log.jsonl and, only when asked (``--verbose``), to the screen as well.
    """
    args = training_arguments(config, paths, eval_set is not None, tokenizer)
    set_generation_defaults(model, config.generation, tokenizer)
    callbacks = [JsonlLogCallback(paths.log), ProgressDisplayCallback(f"train {config.peft.method}")]
    if config.train.tensorboard:
        callbacks.append(tensorboard_callback(paths.tensorboard))
    if config.train.mlflow:
        callbacks.append(mlflow_callback(config, paths))
    if config.train.early_stopping_patience and args.load_best_model_at_end:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.train.early_stopping_patience))
    compute_metrics = (
        functools.partial(rouge_from_predictions, tokenizer=tokenizer) if config.train.eval_rouge else None
    )
    trainer = SumlabTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=dynamic_padding_collator(tokenizer, model),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        causal=is_causal(model),
        callbacks=callbacks,
    )
    if not trainer_logs_shown():
        trainer.remove_callback(PrinterCallback)  # added by the Trainer: it prints each log dict
    return trainer


def train(
    config: TrainConfig, *, out_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False
) -> TrainResult:
    """Train ``config`` into a run directory and return where it is, with its metrics.

    Args:
        out_dir: the run directory (default: ``config.output_dir`` or ``runs/<name>``).
        resume: continue from the last complete checkpoint of an existing run with the same config.
        overwrite: replace an existing run directory instead of refusing.
    """
    config = resolve_config(config)
    check_environment(config)
    state = distributed_state()  # joins the process group (when launched with several processes) before any load
    root, config_yaml = out_dir or config.output_dir or Path("runs") / config.name, to_yaml(config)
    run_on_main(check_run_dir, root, config_yaml, resume=resume, overwrite=overwrite)
    template = resolve_template(config.prompt)
    tokenizer = load_tokenizer(config.model)
    # PEFT initialises its adapter weights (LoRA's A, prompt embeddings) from the global RNG
    set_seed(config.train.seed)
    model = build_trainable_model(config)
    train_set, eval_set, truncation = build_datasets(config, tokenizer, template, causal=is_causal(model))
    # created only now, so that a config that fails above leaves no run directory behind
    # rank 0 creates the directory and the others wait for it; all resume from the checkpoint rank 0 found
    paths = run_on_main(prepare_run_dir, root, config_yaml, resume=resume, overwrite=overwrite)
    checkpoint = run_on_main(_prepare_resume, paths, template, resume, state.num_processes)
    trainer = build_trainer(config, model, tokenizer, train_set, eval_set, paths)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    wall_seconds = time.perf_counter() - started
    metrics = dict(output.metrics)
    if eval_set is not None:
        metrics.update(final_evaluation(trainer))
    save_trained_model(trainer, tokenizer, paths.model)  # every rank: FSDP and DeepSpeed gather their shards
    if trainer.is_world_process_zero():
        summary = run_summary(config, trainer.model, paths, wall_seconds, truncation, len(train_set)).to_json()
        write_json_atomic(paths.metrics, metrics)
        write_json_atomic(paths.summary, summary)
    else:
        summary = {}
    return TrainResult(run_dir=paths.root, model_dir=paths.model, metrics=metrics, summary=summary)


def final_evaluation(trainer: Seq2SeqTrainer) -> dict:
    """The validation metrics of the weights that training ended with, evaluating them only if the Trainer has not.

    The Trainer evaluates at the last step (and, with ``load_best_model_at_end``, loads back the best checkpoint,
    which it evaluated when it was saved): its log history then already holds these metrics, and evaluating again
    would cost one more pass over the validation set and log a second record for the step.
    """
    best = trainer.state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    step = checkpoint_step(best) if best else trainer.state.global_step
    for record in reversed(trainer.state.log_history):
        if record.get("step") == step and "eval_loss" in record:
            return {key: value for key, value in record.items() if key.startswith("eval_")}
    return trainer.evaluate()


def _prepare_resume(paths: RunPaths, template: str, resume: bool, num_processes: int) -> Path | None:
    """On rank 0: save the prompt, find the checkpoint to resume from, and trim the log back to it."""
    write_text_atomic(paths.prompt, template)
    checkpoint = resume_checkpoint(paths.checkpoints) if resume else None
    if checkpoint is not None:
        check_resume_world_size(checkpoint, num_processes)
    trim_log(paths.log, checkpoint_step(checkpoint))
    return checkpoint


def run_summary(
    config: TrainConfig, model, paths: RunPaths, wall_seconds: float, truncation: dict, examples: int
) -> RunSummary:
    """Parameters, sizes on disk, time and memory: the cost side of the lab's comparison (``summary.json``)."""
    counts = count_parameters(model)
    bytes_per_parameter = 4 if config.model.dtype in ("auto", "float32") else 2
    base_parameters = counts.total - (counts.trainable if config.peft.method != "full" else 0)
    return RunSummary(
        method=config.peft.method,
        parameters=counts.to_json(),
        saved_bytes=size_on_disk(paths.model),
        full_model_bytes=base_parameters * bytes_per_parameter,
        wall_seconds=round(wall_seconds, 3),
        peak_memory=peak_memory(),
        train_examples=examples,
        truncated=truncation,
        device="cuda" if torch.cuda.is_available() else "cpu",
        learning_rate=effective_learning_rate(config),
    )
