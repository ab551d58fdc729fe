"""``sumlab serve``: the command's options; ``sumlab.serve.launch`` checks them and starts the server."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sumlab.cli.options import (
    BaseModelOpt,
    ComputeTypeOpt,
    DtypeOpt,
    EngineOpt,
    PickleOpt,
    PromptOpt,
    RandomInitOpt,
    check_engine_options,
    model_options,
    prompt_template,
)
from sumlab.serve.schemas import ServeLimits

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
HostOpt = Annotated[
    str,
    typer.Option("--host", help="address to listen on; beyond loopback it needs --api-key-env (or --insecure-no-auth)"),
]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535)]
ApiKeyOpt = Annotated[
    Optional[str],
    typer.Option("--api-key-env", help="require 'Authorization: Bearer <token>', the token read from this variable"),
]
AllowedHostOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--allowed-host",
        help="a Host name clients may use, besides 127.0.0.1, localhost and ::1 (repeatable); others get 400",
    ),
]
InsecureOpt = Annotated[
    bool, typer.Option("--insecure-no-auth", help="allow a --host beyond loopback without --api-key-env")
]
ProxyHeadersOpt = Annotated[
    bool,
    typer.Option("--trust-proxy-headers", help="take the client address from X-Forwarded-For of a proxy on 127.0.0.1"),
]
DrainOpt = Annotated[
    float,
    typer.Option(
        "--drain-timeout", metavar="SECONDS", help="on SIGTERM, time queued work has to finish; what's left gets 503"
    ),
]
BatchSizeOpt = Annotated[int, _limit("--max-batch-size", "most dialogues per generate call")]
BatchWaitOpt = Annotated[float, _limit("--batch-wait-ms", "how long a dialogue waits for others to batch with", 0)]
QueueOpt = Annotated[int, _limit("--max-queue", "most queued dialogues; beyond it 503")]
DialogueCharsOpt = Annotated[int, _limit("--max-dialogue-chars", "longest dialogue (422 beyond it)")]
BodyBytesOpt = Annotated[int, _limit("--max-body-bytes", "largest request body (413 beyond it)")]
NewTokensCapOpt = Annotated[int, _limit("--max-new-tokens-cap", "largest max_new_tokens a request may ask for")]
BeamsCapOpt = Annotated[int, _limit("--max-beams-cap", "largest num_beams a request may ask for")]
SourceTokensOpt = Annotated[
    int,
    _limit(
        "--max-source-tokens",
        "most tokens a dialogue's prompt may have (422 beyond it, or beyond the model's positions); never cut",
    ),
]
NoBatchingOpt = Annotated[bool, typer.Option("--no-batching", help="one generate call per dialogue (for comparison)")]


def serve_command(
    model: BaseModelOpt = None,
    adapter: AdapterOpt = None,
    merged: MergedOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    api_key_env: ApiKeyOpt = None,
    allowed_host: AllowedHostOpt = None,
    insecure_no_auth: InsecureOpt = False,
    trust_proxy_headers: ProxyHeadersOpt = False,
    prompt: PromptOpt = "lab",
    dtype: DtypeOpt = "auto",
    random_init: RandomInitOpt = False,
    allow_pickle: PickleOpt = False,
    engine: EngineOpt = "torch",
    compute_type: ComputeTypeOpt = "auto",
    max_batch_size: BatchSizeOpt = LIMITS.max_batch_size,
    batch_wait_ms: BatchWaitOpt = LIMITS.batch_wait_ms,
    max_queue: QueueOpt = LIMITS.max_queue,
    max_dialogue_chars: DialogueCharsOpt = LIMITS.max_dialogue_chars,
    max_body_bytes: BodyBytesOpt = LIMITS.max_body_bytes,
    max_new_tokens_cap: NewTokensCapOpt = LIMITS.max_new_tokens_cap,
    max_beams_cap: BeamsCapOpt = LIMITS.max_beams_cap,
    max_source_tokens: SourceTokensOpt = LIMITS.max_source_tokens,
    no_batching: NoBatchingOpt = False,
    drain_timeout: DrainOpt = LIMITS.drain_timeout_s,
) -> None:
    """Serve the base model, its adapters and merged models: JSON API (/v1, docs at /docs), web page at /, /metrics.

    --prompt is the template of the base, and of the runs that recorded none. With --engine ctranslate2 each
    model (the base, each adapter merged into it, each merged model) is converted once and served as its own engine.
    """
    from sumlab.serve.launch import check_drain_timeout, check_exposure, plan_listener, plan_server, serve

    check_engine_options(engine, compute_type)
    plan = plan_server(model, adapter or [], merged or [], api_key_env)
    check_exposure(host, plan.token, insecure_no_auth)
    listener = plan_listener(host, port, allowed_host or [], trust_proxy_headers)
    drain_timeout = check_drain_timeout(drain_timeout)
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
        max_source_tokens=max_source_tokens,
        batching=not no_batching,
        drain_timeout_s=drain_timeout,
    )
    serve(plan, base, template, limits, listener, engine, compute_type)
