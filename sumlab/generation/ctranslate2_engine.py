"""The CTranslate2 generation engine: a converted model loaded once, generating for batches of prompt ids.

It decodes as the torch path does (``sumlab.generation.batching.generate_from_ids``): the same prompt ids, the
same stop tokens, ``max_new_tokens``, beams, ``no_repeat_ngram_size`` and ``length_penalty``, greedy otherwise,
and the same decoding and stripping. Seq2seq models run in a ``ctranslate2.Translator`` (the decoder starts from
the model's decoder start token, pad for T5), causal ones in a ``ctranslate2.Generator`` that returns only the
continuation.

Threads: on a CPU the engine runs one single-threaded worker per thread (``inter_threads``) and splits each batch
between them, rather than one worker with several threads (``intra_threads``). Decoding a batch is a chain of
small matrix products, which one thread keeps busy better than several that wait for each other: on the
flan-t5-base architecture (2 threads, 48 dialogues, 24 new tokens) int8 went from 12.2 s to 8.0 s and float32
from 23.4 s to 16.9 s (benchmarks/generation_speed.py). The workers share the weights. On a GPU there is one
worker.

Compute types: ``auto`` is float32 on a CPU and bfloat16 on a CUDA GPU that supports it (float32 otherwise),
the precision torch's ``auto`` picks; ``int8`` and ``int8_float32`` quantize the weights (fastest on a CPU);
``float16`` and ``int8_float16`` need CUDA (and are refused for T5, as in torch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sumlab.config import ComputeType, GenerationSettings, ModelConfig
from sumlab.errors import SumlabError
from sumlab.generation.conversion import (
    FLOAT16_TYPES,
    HF_DIR,
    converted_model,
    read_vocabulary,
    require_ctranslate2,
)

log = logging.getLogger(__name__)
_warned: set[str] = set()


def pick_ct2_device() -> str:
    """``cuda`` when CTranslate2 sees a GPU, otherwise ``cpu``."""
    return "cuda" if require_ctranslate2().get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(requested: ComputeType, device: str) -> str:
    """The concrete compute type for ``requested`` on ``device`` (see the module's docstring for ``auto``).

    Raises:
        SumlabError: a float16 type on a CPU, or a type this device does not support.
    """
    supported = set(require_ctranslate2().get_supported_compute_types(device))
    if requested == "auto":
        return "bfloat16" if device == "cuda" and "bfloat16" in supported else "float32"
    if requested in FLOAT16_TYPES and device != "cuda":
        raise SumlabError(
            f"compute type {requested} needs a CUDA GPU, and this machine has none",
            "on a CPU use auto, float32, int8 or int8_float32",
        )
    if requested not in supported:
        raise SumlabError(
            f"compute type {requested} is not supported on this {device}",
            f"use one of: auto, {', '.join(sorted(supported))}",
        )
    return requested


@dataclass
class CTranslate2Engine:
    """A converted model in CTranslate2, loaded once; ``generate_from_ids`` generates for one batch.

    It carries the Hugging Face ``config`` and ``generation_config`` it was converted from, so the helpers that
    take a model (``is_causal``, ``stop_token_ids``) take the engine too.

    Attributes:
        runner: the ``ctranslate2.Translator`` (seq2seq) or ``ctranslate2.Generator`` (causal).
        config: the model's transformers config.
        generation_config: its generation config (the end tokens a causal model names).
        directory: the converted model's directory.
        device: ``cpu`` or ``cuda``.
        compute_type: the concrete compute type it runs in.
        token_ids: CTranslate2's id of each output token (a Translator returns tokens, not ids).
        workers: how many batches the runner decodes at once (its ``inter_threads``).
    """

    runner: Any
    config: Any
    generation_config: Any
    directory: Path
    device: str
    compute_type: str
    token_ids: dict[str, int] | None = None
    workers: int = 1

    @classmethod
    def load(cls, directory: str | Path, compute_type: str, device: str | None = None, threads: int | None = None):
        """Load a converted model (a cache entry or an export); ``compute_type`` is a concrete type."""
        import torch
        from transformers import AutoConfig, GenerationConfig

        from sumlab.runtime.distributed import distributed_state

        ctranslate2 = require_ctranslate2()
        directory = Path(directory)
        device = device or pick_ct2_device()
        hf_config = AutoConfig.from_pretrained(directory / HF_DIR, trust_remote_code=False)
        generation_config = GenerationConfig.from_pretrained(directory / HF_DIR)
        runner_class = ctranslate2.Generator if is_causal_config(hf_config) else ctranslate2.Translator
        gpus = ctranslate2.get_cuda_device_count() if device == "cuda" else 1
        torch_threads = torch.get_num_threads()
        workers = 1 if device == "cuda" else max(threads or torch_threads, 1)
        runner = runner_class(
            str(directory),
            device=device,
            device_index=distributed_state().local_process_index % max(gpus, 1),  # one GPU per process
            compute_type=compute_type,
            inter_threads=workers,
            intra_threads=1 if device == "cpu" else threads or torch_threads,
        )
        torch.set_num_threads(torch_threads)  # CTranslate2 sets this thread's OpenMP threads to its intra_threads
        vocabulary = read_vocabulary(directory)
        token_ids = {token: index for index, token in enumerate(vocabulary)} if vocabulary else None
        return cls(runner, hf_config, generation_config, directory, device, compute_type, token_ids, workers)

    @property
    def causal(self) -> bool:
        return is_causal_config(self.config)

    def generate_from_ids(
        self, tokenizer, batch: Sequence[Sequence[int]], settings: GenerationSettings
    ) -> tuple[list[str], list[int]]:
        """One batch of prompt ids: the summaries and how many tokens each took, as the torch path returns them."""
        return self.submit(tokenizer, batch, settings).result()

    def submit(self, tokenizer, batch: Sequence[Sequence[int]], settings: GenerationSettings) -> PendingBatch:
        """Queue one batch, split between the workers, and return at once; ``result()`` waits for its summaries.

        Batches queued one after another keep every worker busy: a worker that finishes its part takes the next
        batch's instead of waiting for the slowest part of its own batch.
        """
        tokens = [tokenizer.convert_ids_to_tokens(list(ids)) for ids in batch]
        if settings.num_beams > 1 and settings.no_repeat_ngram_size and "ngram" not in _warned:
            _warned.add("ngram")
            log.warning(
                "ctranslate2 with beams and no_repeat_ngram_size: it renormalizes the probabilities after blocking "
                "repeated n-grams and transformers does not, so some summaries differ from --engine torch's"
            )
        options = decoding_options(settings, self.stop_ids(tokenizer))
        if self.causal:
            options.update(max_length=settings.max_new_tokens, include_prompt_in_result=False)
            run = self.runner.generate_batch
        else:
            options.update(
                max_decoding_length=settings.max_new_tokens,
                min_decoding_length=0,  # torch may end at once, with an empty summary
                max_input_length=0,  # the prompt ids are already truncated as sumlab truncates them
            )
            run = self.runner.translate_batch
        parts = [run(part, asynchronous=True, **options) for part in split_evenly(tokens, self.workers)]
        return PendingBatch([item for part in parts for item in part], self, tokenizer)

    def stop_ids(self, tokenizer) -> list[int] | None:
        """The torch path's end tokens (``stop_token_ids``), as a list."""
        from sumlab.generation.batching import stop_token_ids

        ids = stop_token_ids(self, tokenizer)
        return [ids] if isinstance(ids, int) else ids


@dataclass
class PendingBatch:
    """A batch an engine is decoding; ``result()`` waits for it (``CTranslate2Engine.submit``)."""

    items: list  # CTranslate2's asynchronous results, one per prompt, in order
    engine: CTranslate2Engine
    tokenizer: Any

    def result(self) -> tuple[list[str], list[int]]:
        """The summaries and how many tokens each took, as the torch path returns them."""
        results = [item.result() for item in self.items]
        if self.engine.causal:
            generated = [result.sequences_ids[0] for result in results]
        else:
            token_ids = self.engine.token_ids
            to_id = token_ids.__getitem__ if token_ids else self.tokenizer.convert_tokens_to_ids
            generated = [[to_id(token) for token in result.hypotheses[0]] for result in results]
        texts = [text.strip() for text in self.tokenizer.batch_decode(generated, skip_special_tokens=True)]
        if self.tokenizer.pad_token_id is None:
            return texts, [max(map(len, generated), default=0)] * len(texts)
        return texts, [sum(token != self.tokenizer.pad_token_id for token in ids) for ids in generated]


def split_evenly(items: list, parts: int) -> list[list]:
    """``items`` in at most ``parts`` consecutive runs whose sizes differ by at most one, none empty."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    bounds = [index * size + min(index, extra) for index in range(parts + 1)]
    return [items[start:end] for start, end in zip(bounds, bounds[1:])]


def is_causal_config(hf_config) -> bool:
    """True for a decoder-only model's config."""
    from sumlab.models.family import family_of

    return family_of(hf_config) == "causal"


def decoding_options(settings: GenerationSettings, end_ids: list[int] | None) -> dict:
    """Options common to ``translate_batch`` and ``generate_batch``: those of ``generation_kwargs`` for torch.

    ``return_end_token`` keeps the end token in the ids, so the token counts include it, as torch's do; the
    decoded text skips it.
    """
    options: dict = {"beam_size": settings.num_beams, "return_end_token": True}
    if settings.num_beams > 1:
        options["length_penalty"] = settings.length_penalty  # patience 1 stops as torch's early_stopping=True
    if settings.no_repeat_ngram_size:
        options["no_repeat_ngram_size"] = settings.no_repeat_ngram_size
    if end_ids:
        options["end_token"] = end_ids
    return options


def load_engine(
    config: ModelConfig, compute_type: ComputeType = "auto", *, adapter_base: str | None = None
) -> tuple[CTranslate2Engine, Any]:
    """Convert (or find in the cache) and load ``config``'s model; the engine and its tokenizer.

    Args:
        config: the model: a hub id, bundled name, model, run or adapter directory (``random_init`` too).
        compute_type: ``auto`` or a concrete type (resolved for this machine's device).
        adapter_base: the base an adapter merges into, if not the one its adapter_config.json records.

    Raises:
        SumlabError: ctranslate2 is missing, the compute type does not suit the device, the architecture
            cannot be converted, or the adapter cannot be merged.
    """
    from sumlab.models.loading import load_tokenizer

    require_ctranslate2()
    device = pick_ct2_device()
    concrete = resolve_compute_type(compute_type, device)
    directory = converted_model(config, concrete, adapter_base=adapter_base)
    engine = CTranslate2Engine.load(directory, concrete, device)
    return engine, load_tokenizer(ModelConfig(name_or_path=str(directory / HF_DIR)))


def check_engine_ready(settings: GenerationSettings, option: str = "generation.engine: ctranslate2") -> None:
    """Fail now, not after hours of training, when the settings' engine cannot run on this machine."""
    if settings.engine == "ctranslate2":
        require_ctranslate2(option)
        resolve_compute_type(settings.compute_type, pick_ct2_device())
