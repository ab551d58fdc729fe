"""``sumlab serve``: the command's options; ``sumlab.serve.launch`` checks them and starts the server."""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer

from sumlab.cli.options import (
    BaseModelOpt,
    DtypeOpt,
    PickleOpt,
    PromptOpt,
    RandomInitOpt,
    model_options,
    prompt_template,
)
from sumlab.serve.schemas import ServeLimits

log = logging.getLogger(__name__)
LIMITS = ServeLimits()  # the defaults of the limit options


def _limit(flag: str, help_text: str, minimum: float = 1):
    """A ``--max-...`` style option of the server's limits."""
    return typer.Option(flag, min=minimum, help=help_text)


AdapterOpt = Annotated[
    Optional[list[str]], typer.Option("--adapter", help="NAME=PATH of a PEFT adapter or its run directory (repeatable)")
]
MergedOpt = Annotated[
    Optional[list[str]],
    typer.Option("--merged", help="NAME=DIR of a merged or fully fine-tuned model, or its run directory (repeatable)"),
]
HostOpt = Annotated[str, typer.Option("--host", help="address to listen on; keep 127.0.0.1 unless behind a proxy")]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535)]
ApiKeyOpt = Annotated[
    Optional[str],
    typer.Option("--api-key-env", help="require 'Authorization: Bearer <token>', the token read from this variable"),
]
BatchSizeOpt = Annotated[int, _limit("--max-batch-size", "most dialogues per generate call")]
BatchWaitOpt = Annotated[float, _limit("--batch-wait-ms", "how long a dialogue waits for others to batch with", 0)]
QueueOpt = Annotated[int, _limit("--max-queue", "most queued dialogues; beyond it 503")]
DialogueCharsOpt = Annotated[int, _limit("--max-dialogue-chars", "longest dialogue (422 beyond it)")]
BodyBytesOpt = Annotated[int, _limit("--max-body-bytes", "largest request body (413 beyond it)")]
NewTokensCapOpt = Annotated[int, _limit("--max-new-tokens-cap", "largest max_new_tokens a request may ask for")]
BeamsCapOpt = Annotated[int, _limit("--max-beams-cap", "largest num_beams a request may ask for")]
NoBatchingOpt = Annotated[bool, typer.Option("--no-batching", help="one generate call per dialogue (for comparison)")]


def serve_command(
    model: BaseModelOpt = None,
    adapter: AdapterOpt = None,
    merged: MergedOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    api_key_env: ApiKeyOpt = None,
    prompt: PromptOpt = "lab",
    dtype: DtypeOpt = "auto",
    random_init: RandomInitOpt = False,
    allow_pickle: PickleOpt = False,
    max_batch_size: BatchSizeOpt = LIMITS.max_batch_size,
    batch_wait_ms: BatchWaitOpt = LIMITS.batch_wait_ms,
    max_queue: QueueOpt = LIMITS.max_queue,
    max_dialogue_chars: DialogueCharsOpt = LIMITS.max_dialogue_chars,
    max_body_bytes: BodyBytesOpt = LIMITS.max_body_bytes,
    max_new_tokens_cap: NewTokensCapOpt = LIMITS.max_new_tokens_cap,
    max_beams_cap: BeamsCapOpt = LIMITS.max_beams_cap,
    no_batching: NoBatchingOpt = False,
) -> None:
    """Serve the base model, its adapters and merged models: JSON API (/v1, docs at /docs), web page at /, /metrics.

    --prompt is the template of the base, and of the runs that recorded none.
    """
    from sumlab.serve.launch import is_loopback, plan_server, serve

    plan = plan_server(model, adapter or [], merged or [], api_key_env)
    base = model_options(plan.model, random_init, None, dtype, allow_pickle)
    template = prompt_template(prompt, None)
    limits = ServeLimits(
        max_batch_size=max_batch_size,
        batch_wait_ms=batch_wait_ms,
        max_queue=max_queue,
        max_dialogue_chars=max_dialogue_chars,
        max_body_bytes=max_body_bytes,
        max_new_tokens_cap=max_new_tokens_cap,
        max_beams_cap=max_beams_cap,
        batching=not no_batching,
    )
    if not is_loopback(host) and plan.token is None:
        log.warning("listening on %s without --api-key-env: anyone who can reach this port can use the models", host)
    serve(plan, base, template, limits, host, port)
