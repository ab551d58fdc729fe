"""Several processes, one job: the process group, rank-0-only writes, and generation split across processes.

sumlab runs on the ecosystem's engine: ``torchrun`` or ``accelerate launch`` start the processes, accelerate's
``PartialState`` joins them into one process group (NCCL on GPUs, gloo on CPUs) and the Trainer runs DDP, FSDP or
DeepSpeed over it. This module holds what sumlab adds on top:

- ``distributed_state()`` joins the group with a bounded collective timeout, so that a hung or lost peer ends
  the job with an error instead of blocking it forever (``SUMLAB_DDP_TIMEOUT`` seconds, default 1800);
- ``run_on_main()`` does a check or a write on rank 0 while the others wait, and hands its result, or its
  error, to every rank (so that all ranks fail together, with the same message);
- ``summarize()`` (sumlab.generation) splits the dialogues across processes by whole length-sorted batches and gathers
  the summaries back in input order: every batch is the batch one process would have generated, so the
  predictions are exactly those of one process;
- ``check_resume_world_size()`` refuses to resume a checkpoint written by another number of processes;
- ``check_sharded_evaluation()`` refuses generation inside evaluation where the parameters are sharded
  (FSDP, DeepSpeed ZeRO-3), and ``save_trained_model()`` gathers them when the model is saved.

With one process (no launcher) every function here does what the plain single-process code does.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
from accelerate import PartialState

from sumlab.errors import SumlabError, first_line

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
        raise SumlabError(
            f"{TIMEOUT_ENV}={raw!r} is not a number of seconds", f"set {TIMEOUT_ENV} to e.g. 1800, or unset it"
        )
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


def close_process_group() -> None:
    """Leave the job's process group, if this process joined one (a no-op otherwise).

    Called when a command ends. Left to the interpreter's shutdown, the group's C++ destructors race its
    worker threads, and under load a rank that finished its work could still abort ("terminate called without
    an active exception", exit code -6), failing the whole launch.
    """
    if "torch.distributed" not in sys.modules:  # a light command never imported torch: nothing to close
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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


# ---------------------------------------------------------------- checkpoints and failures


PEER_FAILURE_MARKERS = (  # what gloo and NCCL say when the other end of a collective is gone or silent
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "timed out waiting",
    "watchdog caught collective operation timeout",
    "communicator was aborted",
)


def as_peer_failure(exc: BaseException) -> SumlabError | None:
    """A one-line SumlabError for an exception that means another process of the job died or hung, else None.

    torch raises ``DistBackendError`` (or a ``RuntimeError`` from gloo) in the surviving processes when a peer's
    connection closes, or when a collective waits longer than the timeout.
    """
    if launched_world_size() <= 1 or not isinstance(exc, RuntimeError):
        return None
    import torch.distributed as dist

    message = re.sub(r"^\[[^\]]*\]\s*", "", first_line(exc)).split(". This is typically")[0][:300]  # gloo's source path
    known = isinstance(exc, getattr(dist, "DistError", ())) or any(m in str(exc).lower() for m in PEER_FAILURE_MARKERS)
    if not known:
        return None
    rank = os.environ.get("RANK", "?")
    return SumlabError(
        f"rank {rank} lost contact with the other processes of the job: {message}",
        "another process died or hung (the launcher's output names it); fix that, then rerun the same command "
        f"(training continues with --resume); collectives wait at most {TIMEOUT_ENV}={timeout_seconds()}s",
    )
