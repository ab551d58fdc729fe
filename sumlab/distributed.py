"""Several processes, one job: the process group, rank-0-only writes, and generation split across processes.

sumlab runs on the ecosystem's engine: ``torchrun`` or ``accelerate launch`` start the processes, accelerate's
``PartialState`` joins them into one process group (NCCL on GPUs, gloo on CPUs) and the Trainer runs DDP, FSDP or
DeepSpeed over it. This module holds what sumlab adds on top:

- ``distributed_state()`` joins the group with a bounded collective timeout, so that a hung or lost peer ends
  the job with an error instead of blocking it forever (``SUMLAB_DDP_TIMEOUT`` seconds, default 1800);
- ``run_on_main()`` does a check or a write on rank 0 while the others wait, and hands its result, or its
  error, to every rank (so that all ranks fail together, with the same message);
- ``summarize_distributed()`` splits the dialogues across processes by whole length-sorted batches and gathers
  the summaries back in input order: every batch is the batch one process would have generated, so the
  predictions are exactly those of one process;
- ``check_resume_world_size()`` refuses to resume a checkpoint written by another number of processes;
- ``check_sharded_evaluation()`` refuses generation inside evaluation where the parameters are sharded
  (FSDP, DeepSpeed ZeRO-3), and ``save_trained_model()`` gathers them when the model is saved.

With one process (no launcher) every function here does what the plain single-process code does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
from accelerate import PartialState

from sumlab.adapters import save_model_dir
from sumlab.config import GenerationSettings, TrainSettings
from sumlab.errors import SumlabError
from sumlab.generation import length_sorted_batches, summarize
from sumlab.encoding import is_causal, prompt_ids
from sumlab.prompts import TEMPLATES

TIMEOUT_ENV = "SUMLAB_DDP_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 1800  # the Trainer's ddp_timeout default; rank 0 saving an XL checkpoint takes minutes

T = TypeVar("T")


def launched_world_size() -> int:
    """How many processes the launcher (torchrun, accelerate launch, mpirun) started; 1 without one."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def use_cpu_backend() -> bool:
    """Whether a multi-process job must run on CPUs (gloo): launched with several processes and no CUDA.

    accelerate joins CPU processes into a process group only when asked to run on the CPU; without this,
    ``torchrun`` on a CPU machine would start N processes that each train alone on the whole dataset.
    """
    return launched_world_size() > 1 and not torch.cuda.is_available()


def timeout_seconds() -> int:
    """How long a collective waits for a missing peer before the job fails (``SUMLAB_DDP_TIMEOUT``)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_TIMEOUT_SECONDS
    if not raw.isdigit() or int(raw) <= 0:
        raise SumlabError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds", f"set {TIMEOUT_ENV} to e.g. 1800, or unset it")
    return int(raw)


def distributed_state() -> PartialState:
    """This process's place in the job, joining the process group on the first call.

    Call it before a model is loaded: it also selects this process's GPU (``cuda`` then means ``cuda:LOCAL_RANK``).
    The first call fixes the collective timeout; a later ``PartialState`` (the Trainer's) reuses the group.
    """
    return PartialState(cpu=use_cpu_backend(), timeout=timedelta(seconds=timeout_seconds()))


def is_main_process() -> bool:
    """True on global rank 0, the one process that writes files (and on the only process of a plain run)."""
    return distributed_state().is_main_process


def barrier() -> None:
    """Wait until every process gets here (no-op with one process)."""
    distributed_state().wait_for_everyone()


def run_on_main(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``function`` on rank 0 only; every rank returns its result, or raises its error.

    The others wait for rank 0, so what it creates (a run directory, a file) exists when they go on. A
    SumlabError on rank 0 is raised on every rank with the same message, so the whole job stops at once
    instead of the other ranks waiting for rank 0 until the timeout. The result must be picklable.
    """
    state = distributed_state()
    if state.num_processes == 1:
        return function(*args, **kwargs)
    from accelerate.utils import broadcast_object_list

    outcome: list[Any] = [None]
    failure: BaseException | None = None
    if state.is_main_process:
        try:
            outcome = [("ok", function(*args, **kwargs))]
        except SumlabError as exc:
            outcome, failure = [("error", (exc.message, exc.hint))], exc
        except BaseException as exc:  # still tell the others, then fail here with the real traceback
            outcome, failure = [("crash", f"{type(exc).__name__}: {exc}")], exc
    broadcast_object_list(outcome, from_process=0)
    kind, value = outcome[0]
    if failure is not None:
        raise failure
    if kind == "error":
        raise SumlabError(*value)
    if kind == "crash":
        raise SumlabError(f"rank 0 failed: {value}", "see rank 0's traceback in the launcher's output")
    return value


# ---------------------------------------------------------------- generation


def shard_order(tokenizer, dialogues: Sequence[str], settings: GenerationSettings, template: str,
                rank: int, world_size: int, causal: bool = False) -> list[int]:
    """The indices of the dialogues that process ``rank`` summarizes, in the order it should get them.

    The dialogues are cut into the length-sorted batches that ``summarize`` makes for one process, and the
    batches are dealt out in turn (batch i to rank i mod N): each process gets long and short batches alike,
    and, handed its dialogues in this order, ``summarize`` forms exactly these batches again, with the same
    padding, so the summaries match one process's bit for bit.
    """
    encoded = prompt_ids(tokenizer, template, dialogues, settings.max_source_length, causal)
    lengths = [len(ids) for ids in encoded]
    batches = length_sorted_batches(lengths, settings.batch_size)
    return [index for batch in batches[rank::world_size] for index in batch]


def summarize_distributed(
    model,
    tokenizer,
    dialogues: Sequence[str],
    settings: GenerationSettings | None = None,
    template: str = TEMPLATES["lab"],
    *,
    progress: bool | None = None,
) -> list[str]:
    """``summarize`` with the dialogues split across the job's processes; every rank returns the full list.

    Each process must hold the same model (on its own device) and the same dialogues. The result is in the
    order of ``dialogues``, each summary exactly once, and identical on every rank.

    Raises:
        RuntimeError: if the gathered summaries don't cover each dialogue exactly once (a bug, never expected).
    """
    settings = settings or GenerationSettings()
    state = distributed_state()
    if state.num_processes == 1 or not dialogues:
        return summarize(model, tokenizer, dialogues, settings, template, progress=progress)
    from accelerate.utils import gather_object

    order = shard_order(tokenizer, dialogues, settings, template, state.process_index, state.num_processes,
                        causal=is_causal(model))
    show = (progress if progress is not None else len(dialogues) >= 64) and state.is_main_process
    local = summarize(model, tokenizer, [dialogues[i] for i in order], settings, template, progress=show)
    gathered = gather_object(list(zip(order, local)))  # every rank's (index, summary) pairs, rank by rank
    return _in_input_order(gathered, len(dialogues))


def _in_input_order(pairs: Sequence[tuple[int, str]], count: int) -> list[str]:
    summaries: list[str | None] = [None] * count
    for index, text in pairs:
        if summaries[index] is not None:
            raise RuntimeError(f"dialogue {index} was summarized twice across processes")
        summaries[index] = text
    missing = [index for index, text in enumerate(summaries) if text is None]
    if missing:
        raise RuntimeError(f"{len(missing)} dialogues were not summarized by any process (first: {missing[0]})")
    return summaries  # type: ignore[return-value]


# ---------------------------------------------------------------- checkpoints and failures


def checkpoint_world_size(checkpoint: Path) -> int | None:
    """How many processes wrote ``checkpoint``, from the Trainer's RNG files (None when it saved none)."""
    if (checkpoint / "rng_state.pth").is_file():
        return 1
    ranks = [path.stem.rsplit("_", 1)[-1] for path in checkpoint.glob("rng_state_*.pth")]
    indices = [int(rank) for rank in ranks if rank.isdigit()]
    return max(indices) + 1 if indices else None


def check_resume_world_size(checkpoint: Path, num_processes: int) -> None:
    """Refuse to resume ``checkpoint`` with another number of processes than the one that wrote it.

    The data order of the remaining steps (each rank's shard of each global batch), the RNG states and, under
    FSDP or DeepSpeed, the sharded optimizer states all depend on it.
    """
    saved = checkpoint_world_size(checkpoint)
    if saved is not None and saved != num_processes:
        raise SumlabError(
            f"{checkpoint} was written by {saved} process{'es' if saved > 1 else ''}; this run has {num_processes}",
            f"resume with {saved} process{'es' if saved > 1 else ''} (e.g. torchrun --nproc_per_node={saved} -m sumlab "
            "train ... --resume), or start a new run",
        )


def deepspeed_zero_stage() -> int | None:
    """The ZeRO stage that ``accelerate launch`` set up for DeepSpeed (None without DeepSpeed)."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() != "true":
        return None
    stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")
    if stage.isdigit():
        return int(stage)
    config_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if config_file and Path(config_file).is_file():
        stage = json.loads(Path(config_file).read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage")
        return int(stage) if str(stage).isdigit() else None
    return None


def parameter_sharding() -> str | None:
    """How the launcher shards the model's parameters across processes: "FSDP", "DeepSpeed ZeRO-3", or None."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "FSDP"
    if deepspeed_zero_stage() == 3:
        return "DeepSpeed ZeRO-3"
    return None


def check_sharded_evaluation(settings: TrainSettings) -> None:
    """Refuse ``train.eval_rouge`` where parameters are sharded: evaluate after training instead.

    Generating inside evaluation would gather every layer's parameters from all processes at every decoding
    step (``synced_gpus``): tens of times slower than training, and a known source of hangs and errors with
    encoder-decoder models. The evaluation loss needs one forward pass and stays on.
    """
    sharding = parameter_sharding()
    if sharding and settings.eval_rouge:
        raise SumlabError(
            f"train.eval_rouge=true is refused under {sharding}: generating during evaluation would gather the "
            "sharded parameters at every decoding step",
            "set train.eval_rouge=false (the evaluation loss still runs) and score ROUGE after training: sumlab run's "
            "generate stage, or sumlab generate + sumlab evaluate on the run's model/",
        )


def save_trained_model(trainer, tokenizer, out: Path) -> None:
    """Save the trained model (or adapter) and its tokenizer into ``out``, written by rank 0 only.

    With DDP, or one process, rank 0's copy is the whole model. Under FSDP or DeepSpeed each process holds a
    shard: every rank must call this, to take part in gathering them (``Trainer.save_model``); the file is the
    ordinary full model (FSDP's FULL_STATE_DICT, ZeRO-3's zero3_save_16bit_model), loadable without them.
    """
    if not (getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)):
        if trainer.is_world_process_zero():
            save_model_dir(trainer.model, tokenizer, out)
        return
    staging = out.with_name(f".{out.name}.tmp")
    run_on_main(shutil.rmtree, staging, ignore_errors=True)
    trainer.save_model(str(staging))  # a collective: gathers the shards, then rank 0 writes
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)


PEER_FAILURE_MARKERS = (  # what gloo and NCCL say when the other end of a collective is gone or silent
    "connection closed by peer", "connection reset by peer", "broken pipe", "timed out waiting",
    "watchdog caught collective operation timeout", "communicator was aborted",
)


def as_peer_failure(exc: BaseException) -> SumlabError | None:
    """A one-line SumlabError for an exception that means another process of the job died or hung, else None.

    torch raises ``DistBackendError`` (or a ``RuntimeError`` from gloo) in the surviving processes when a peer's
    connection closes, or when a collective waits longer than the timeout.
    """
    if launched_world_size() <= 1 or not isinstance(exc, RuntimeError):
        return None
    import torch.distributed as dist

    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first_line = re.sub(r"^\[[^\]]*\]\s*", "", first_line).split(". This is typically")[0][:300]  # gloo's source path
    known = isinstance(exc, getattr(dist, "DistError", ())) or any(m in str(exc).lower() for m in PEER_FAILURE_MARKERS)
    if not known:
        return None
    rank = os.environ.get("RANK", "?")
    return SumlabError(
        f"rank {rank} lost contact with the other processes of the job: {first_line}",
        "another process died or hung (the launcher's output names it); fix that, then rerun the same command "
        f"(training continues with --resume); collectives wait at most {TIMEOUT_ENV}={timeout_seconds()}s",
    )
