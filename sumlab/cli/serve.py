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

log = logging.getLogger(__name__)


def serve_command(
    model: BaseModelOpt = None,
    adapter: Annotated[
        Optional[list[str]],
        typer.Option("--adapter", help="NAME=PATH of a PEFT adapter or its run directory (repeatable)"),
    ] = None,
    merged: Annotated[
        Optional[list[str]],
        typer.Option(
            "--merged", help="NAME=DIR of a merged or fully fine-tuned model, or its run directory (repeatable)"
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="address to listen on; keep 127.0.0.1 unless behind a proxy")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    api_key_env: Annotated[
        Optional[str],
        typer.Option(
            "--api-key-env",
            help="require 'Authorization: Bearer <token>', the token read from this environment variable",
        ),
    ] = None,
    prompt: PromptOpt = "lab",
    dtype: DtypeOpt = "auto",
    random_init: RandomInitOpt = False,
    allow_pickle: PickleOpt = False,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="most dialogues per generate call")
    ] = 8,
    batch_wait_ms: Annotated[
        float, typer.Option("--batch-wait-ms", min=0, help="how long a dialogue waits for others to batch with")
    ] = 10.0,
    max_queue: Annotated[int, typer.Option("--max-queue", min=1, help="most queued dialogues; beyond it 503")] = 256,
    max_dialogue_chars: Annotated[
        int, typer.Option("--max-dialogue-chars", min=1, help="longest dialogue (422 beyond it)")
    ] = 8000,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="largest request body (413 beyond it)")
    ] = 1_048_576,
    max_new_tokens_cap: Annotated[
        int, typer.Option("--max-new-tokens-cap", min=1, help="largest max_new_tokens a request may ask for")
    ] = 256,
    max_beams_cap: Annotated[
        int, typer.Option("--max-beams-cap", min=1, help="largest num_beams a request may ask for")
    ] = 4,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="one generate call per dialogue (for comparison)")
    ] = False,
) -> None:
    """Serve the base model, its adapters and merged models: JSON API (/v1, docs at /docs), web page at /, /metrics.

    --prompt is the template of the base, and of the runs that recorded none.
    """
    from sumlab.serve.launch import is_loopback, plan_server, serve
    from sumlab.serve.schemas import ServeLimits

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
