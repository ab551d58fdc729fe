"""Models converted to CTranslate2's format, once, into a cache keyed by the weights' content.

A model directory, a bundled model, a hub id, a run directory or a LoRA adapter (merged into its base first)
becomes a CTranslate2 model under ``cache_root()``. The cache key is the SHA-256 of every file the conversion
reads (weights, config, tokenizer), the compute type and the converter's version, so a retrained model is never
served stale. A conversion is written into a temporary directory and renamed into place when complete, so a
killed process leaves no half entry. An entry holds CTranslate2's files and, in ``hf/``, the Hugging Face config,
generation config and tokenizer it was converted with.

``ctranslate2`` is an optional package (``pip install 'sumlab[fast]'``), imported only when a conversion runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sumlab.config import ComputeType, ModelConfig
from sumlab.errors import SumlabError, first_line

CONVERSION_FORMAT = 1  # bump when the layout of an entry or what goes into the key changes
HF_DIR = "hf"  # inside an entry: the Hugging Face config, generation config and tokenizer
MARKER = "sumlab-conversion.json"  # written last: an entry without it is not used
STALE_SECONDS = 24 * 3600  # a temporary directory this old is left over from a killed conversion
INSTALL_HINT = "pip install 'sumlab[fast]'"
TORCH_HINT = "use --engine torch"
FLOAT16_TYPES = ("float16", "int8_float16")
T5_TYPES = ("t5", "mt5", "umt5")


def require_ctranslate2(option: str = "--engine ctranslate2"):
    """The ``ctranslate2`` module, or a SumlabError naming ``option`` and the extra to install."""
    try:
        import ctranslate2
    except ImportError:
        raise SumlabError(f"{option} needs the optional package ctranslate2", INSTALL_HINT) from None
    return ctranslate2


def cache_root() -> Path:
    """Where converted models are kept: ``$SUMLAB_CACHE/ctranslate2``, else ``$XDG_CACHE_HOME/sumlab/ctranslate2``.

    Without either variable, ``~/.cache/sumlab/ctranslate2``.
    """
    if os.environ.get("SUMLAB_CACHE"):
        return Path(os.environ["SUMLAB_CACHE"]).expanduser() / "ctranslate2"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "sumlab" / "ctranslate2"


# ---------------------------------------------------------------- what to convert


@dataclass(frozen=True)
class ConversionSource:
    """What a conversion reads.

    Attributes:
        model_dir: the full model's directory (for an adapter: its base's directory).
        adapter_dir: a LoRA-style adapter to merge into the base first, or None.
        tokenizer: a tokenizer id or directory to use instead of the model's, or None.
        allow_pickle: whether pickle weights may be read.
        random_init: ``model_dir`` names an architecture to build at random init (nothing on disk to hash).
        label: the model as the user named it, for messages.
    """

    model_dir: Path | None
    adapter_dir: Path | None = None
    tokenizer: str | None = None
    allow_pickle: bool = False
    random_init: bool = False
    label: str = ""


def conversion_source(config: ModelConfig, adapter_base: str | None = None) -> ConversionSource:
    """Say what ``config.name_or_path`` holds for a conversion: a model, or an adapter and its base.

    What the name or path is comes from ``sumlab.models.resolve.resolve_model_source``, as for ``--model``
    everywhere: a bundled name, a local model directory, a run directory, an adapter directory (merged into
    ``adapter_base``, else the base it records) or a hub id (its files are fetched into the hub cache).
    """
    from sumlab.models.resolve import resolve_model_source

    common = {"tokenizer": config.tokenizer, "allow_pickle": config.allow_pickle, "label": config.name_or_path}
    if config.random_init:
        return ConversionSource(None, random_init=True, **common)
    resolved = resolve_model_source(config.name_or_path)
    if resolved.adapter is None:
        return ConversionSource(_model_directory(resolved.weights, config.allow_pickle), **common)
    base = _model_directory(adapter_base or resolved.weights, config.allow_pickle)
    return ConversionSource(base, adapter_dir=resolved.adapter, **common)


def _model_directory(weights: str, allow_pickle: bool) -> Path:
    """The directory of a full model: a bundled model's, a local one, or a hub model's snapshot."""
    from sumlab.models.sources import BUNDLED_MODELS, expand_source
    from sumlab.runtime.paths import local_path

    if weights in BUNDLED_MODELS:
        return Path(expand_source(weights))
    local = local_path(weights)
    return local if local is not None else _hub_snapshot(weights, allow_pickle)


def _hub_snapshot(repo_id: str, allow_pickle: bool) -> Path:
    """The local copy of a hub model's config, weights and tokenizer files (downloaded unless cached)."""
    from huggingface_hub import snapshot_download

    from sumlab.models.sources import hub_hint

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns + (["*.bin"] if allow_pickle else [])))
    except Exception as exc:  # the hub client raises many types: offline, not found, gated, bad id
        raise SumlabError(f"could not fetch the model {repo_id!r}: {first_line(exc)}", hub_hint(repo_id)) from None


# ---------------------------------------------------------------- cache key


def file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of each file directly in ``directory`` (hidden files aside), streamed; links are followed."""
    digests = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            with path.open("rb") as handle:
                digests[path.name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return digests


def cache_key(source: ConversionSource, compute_type: str, model_dir: Path | None = None) -> str:
    """The cache entry's name: a hash of the files the conversion reads, the compute type and the converter.

    ``model_dir`` is the directory actually converted when it is not ``source.model_dir`` (a random-init model
    saved to a temporary directory).
    """
    import ctranslate2

    from sumlab.models.sources import expand_source, is_local

    parts: dict = {"model": file_digests(model_dir or source.model_dir)}
    if source.adapter_dir is not None:
        parts["adapter"] = file_digests(source.adapter_dir)
    if source.tokenizer is not None:
        local = is_local(source.tokenizer)
        tokenizer_dir = Path(expand_source(source.tokenizer)) if local else _hub_snapshot(source.tokenizer, False)
        parts["tokenizer"] = file_digests(tokenizer_dir)
    description = {
        "format": CONVERSION_FORMAT,
        "ctranslate2": ctranslate2.__version__,
        "compute_type": compute_type,
        "parts": parts,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- conversion


def converted_model(config: ModelConfig, compute_type: str, *, adapter_base: str | None = None) -> Path:
    """The cache entry of ``config``'s model converted at ``compute_type``, converting it on a miss.

    Args:
        config: the model: its ``name_or_path`` (model, run or adapter directory, bundled name or hub id),
            ``tokenizer``, ``allow_pickle`` and ``random_init`` count.
        compute_type: a concrete CTranslate2 compute type (not ``auto``); the weights are stored in it.
        adapter_base: the base an adapter merges into, if not the one its adapter_config.json records.

    Raises:
        SumlabError: ctranslate2 is missing, the architecture cannot be converted, or the adapter cannot be merged.
    """
    require_ctranslate2()
    source = conversion_source(config, adapter_base)
    check_convertible(source, compute_type)
    root = cache_root()
    if not source.random_init:  # a hit costs the hashing only
        entry = root / cache_key(source, compute_type)
        if (entry / MARKER).is_file():
            return entry
    with _work_dir(root) as work:
        model_dir = _random_init_dir(config, work) if source.random_init else source.model_dir
        entry = root / cache_key(source, compute_type, model_dir)
        if (entry / MARKER).is_file():
            return entry
        staging = work / "converted"
        build_ctranslate2_model(source, model_dir, staging, compute_type, work)
        try:
            staging.rename(entry)
        except OSError:  # another process finished the same conversion first: keep its entry
            if not (entry / MARKER).is_file():
                raise
    return entry


def export_model(config: ModelConfig, out: Path, compute_type: ComputeType, overwrite: bool = False) -> Path:
    """Convert ``config``'s model into ``out`` for deployment (``auto``: float32 weights).

    ``out`` appears only once complete: the conversion is written beside it and renamed. An existing ``out`` is
    refused unless ``overwrite``, and then replaced only after the new conversion is complete.
    The float16 types may be exported on a machine without a GPU; they run on CUDA.
    """
    require_ctranslate2("--format ctranslate2")
    if out.exists() and not overwrite:
        raise SumlabError(f"{out} already exists", "choose another --out, or pass --overwrite")
    stored = "float32" if compute_type == "auto" else compute_type
    source = conversion_source(config)
    check_convertible(source, stored)
    with _work_dir(out.parent, prefix=f".{out.name}.tmp-") as work:
        model_dir = _random_init_dir(config, work) if source.random_init else source.model_dir
        staging = work / "converted"
        build_ctranslate2_model(source, model_dir, staging, stored, work)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        staging.rename(out)
    return out


@contextmanager
def _work_dir(parent: Path, prefix: str = ".tmp-") -> Iterator[Path]:
    """A fresh temporary directory in ``parent`` (same filesystem, so a rename out of it is atomic), removed after."""
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, prefix)
    work = parent / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_stale(parent: Path, prefix: str) -> None:
    """Remove temporary directories that killed conversions left in ``parent`` more than a day ago."""
    for path in parent.glob(f"{prefix}*"):
        try:
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _random_init_dir(config: ModelConfig, work: Path) -> Path:
    """Build ``config``'s architecture at random init and save it (with its tokenizer) into ``work``."""
    import torch

    from sumlab.models.adapters import save_model_dir
    from sumlab.models.loading import load_model, load_tokenizer

    directory = work / "random-init"
    float32 = config.model_copy(update={"dtype": "float32"})
    save_model_dir(load_model(float32, device=torch.device("cpu")), load_tokenizer(config), directory)
    return directory


def check_convertible(source: ConversionSource, compute_type: str) -> None:
    """Raise before any weights load if CTranslate2 has no converter for the architecture, or T5 is asked for float16.

    Raises:
        SumlabError: naming the architecture, or the adapter that cannot be merged, and the fix.
    """
    from sumlab.models.sources import architecture_config

    if source.adapter_dir is not None:
        _check_mergeable(source.adapter_dir)
    if source.random_init:
        hf_config = architecture_config(source.label)
    else:
        hf_config = architecture_config(str(source.model_dir))
    config_class = type(hf_config).__name__
    loaders = _registered_loaders()
    if loaders is not None and config_class not in loaders:
        raise SumlabError(
            f"CTranslate2 cannot convert {source.label}: it has no converter for the {hf_config.model_type} architecture",
            f"{TORCH_HINT}; CTranslate2 converts T5, BART, Llama, Mistral, Qwen2, Gemma, GPT-2 and more",
        )
    if compute_type in FLOAT16_TYPES and hf_config.model_type in T5_TYPES:
        raise SumlabError(
            f"compute type {compute_type} is refused for T5 models: T5's activations overflow float16",
            "use bfloat16 on a GPU that supports it, int8_float32 or float32",
        )


def _registered_loaders() -> set[str] | None:
    """The config class names CTranslate2's Transformers converter knows (None if this version hides them)."""
    from ctranslate2.converters import transformers as converters

    loaders = getattr(converters, "_MODEL_LOADERS", None)
    return set(loaders) if isinstance(loaders, dict) else None


def _check_mergeable(adapter_dir: Path) -> None:
    """Refuse an adapter of virtual tokens (prefix or prompt tuning): it has no weights to merge."""
    from sumlab.models.resolve import read_adapter_config

    peft_type = str(read_adapter_config(adapter_dir).get("peft_type", ""))
    if peft_type in ("PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING"):
        method = peft_type.lower().replace("_", " ")
        raise SumlabError(
            f"the adapter in {adapter_dir} is {method}: it adds virtual tokens, not weights that CTranslate2 can "
            "merge into its base",
            TORCH_HINT,
        )


def build_ctranslate2_model(
    source: ConversionSource, model_dir: Path, out: Path, compute_type: str, work: Path
) -> None:
    """Convert ``model_dir`` (with ``source``'s adapter merged in first) into ``out``, which must not exist.

    ``out`` gets CTranslate2's files, ``hf/`` (config, generation config, tokenizer) and, last, the marker.
    ``work`` is a scratch directory for the merged model.
    """
    from sumlab.models.adapters import merge_adapter
    from sumlab.models.loading import check_weight_format, load_tokenizer

    if source.adapter_dir is not None:
        merged = work / "merged"
        merge_adapter(source.adapter_dir, merged, base=str(model_dir), allow_pickle=source.allow_pickle)
        model_dir = merged
    else:
        check_weight_format(model_dir, source.allow_pickle)
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(model_dir), tokenizer=source.tokenizer))
    converter = _converter(model_dir, tokenizer, source.allow_pickle)
    try:
        converter.convert(str(out), quantization=compute_type)
    except (ValueError, NotImplementedError, KeyError, AttributeError) as exc:
        raise SumlabError(f"CTranslate2 cannot convert {source.label}: {first_line(exc)[:300]}", TORCH_HINT) from None
    _check_vocabulary(out, tokenizer, source.label)
    hf_dir = out / HF_DIR
    converter.loaded.config.save_pretrained(hf_dir)
    converter.loaded.generation_config.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    marker = {"source": source.label, "compute_type": compute_type, "format": CONVERSION_FORMAT}
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _converter(model_dir: Path, tokenizer, allow_pickle: bool):
    """CTranslate2's Transformers converter, reading safetensors only (unless allowed), never remote code."""
    require_ctranslate2()
    from ctranslate2.converters import TransformersConverter

    class SumlabConverter(TransformersConverter):
        loaded = None  # the model it loaded, whose config and generation config go into hf/

        def load_model(self, model_class, model_name_or_path, **kwargs):
            kwargs.update(use_safetensors=None if allow_pickle else True, trust_remote_code=False)
            model = model_class.from_pretrained(model_name_or_path, **kwargs)
            match_t5_output_scaling(model.config)
            self.loaded = model
            return model

        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            return tokenizer  # sumlab's: --tokenizer honoured, a pad token set as for generation

    return SumlabConverter(str(model_dir), trust_remote_code=False)


def match_t5_output_scaling(hf_config) -> None:
    """Make ``tie_word_embeddings`` say whether T5 scales its decoder output, which is what CTranslate2 reads.

    transformers 5 sets T5's ``tie_word_embeddings`` to True always and keeps the real answer in
    ``scale_decoder_outputs`` (False for FLAN-T5 / T5 v1.1). CTranslate2's converter would then scale the
    output by d_model**-0.5: the same greedy summaries, but other beam search scores.
    """
    if hasattr(hf_config, "scale_decoder_outputs"):
        hf_config.tie_word_embeddings = bool(hf_config.scale_decoder_outputs)


def read_vocabulary(directory: Path) -> list[str] | None:
    """The target vocabulary of a converted model (its tokens by id), or None for a layout other than JSON."""
    for name in ("target_vocabulary", "shared_vocabulary", "vocabulary"):
        if (directory / f"{name}.json").is_file():
            return json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
    return None


def _check_vocabulary(out: Path, tokenizer, label: str) -> None:
    """Check that CTranslate2's vocabulary gives every token id the tokenizer's token, as the engine assumes.

    The engine hands CTranslate2 the prompt as the tokenizer's tokens, so the two must map one to one.
    """
    vocabulary = read_vocabulary(out)
    if vocabulary is None:
        return  # another layout (.txt); the equivalence tests cover the formats we know
    # a model may have more rows than its tokenizer has tokens (T5's padding), or the reverse: ids beyond the
    # model's rows cannot be run by torch either
    expected = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), len(vocabulary)))))
    for index, token in enumerate(expected):
        if vocabulary[index] != token:
            raise SumlabError(
                f"CTranslate2 cannot run {label} as converted: its vocabulary and the tokenizer disagree at id {index}",
                TORCH_HINT,
            )
