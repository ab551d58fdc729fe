"""``sumlab serve``: a plain function with typer-annotated options; sumlab.cli registers it.

Heavy imports (torch, FastAPI, uvicorn) happen inside the function, so that importing this
module for the CLI costs nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from sumlab.errors import SumlabError

if TYPE_CHECKING:
    from sumlab.serve.registry import NamedPath

log = logging.getLogger(__name__)

DEFAULT_BASE = "google/flan-t5-base"


@dataclass(frozen=True)
class ServerPlan:
    """What to serve, checked before anything is loaded."""

    model: str
    adapters: list[NamedPath]
    merged: list[NamedPath]
    token: str | None


def read_token(variable: str | None) -> str | None:
    """The bearer token from the environment variable ``variable`` (None without one).

    Raises:
        SumlabError: when the variable is not set or is empty.
    """
    if variable is None:
        return None
    token = os.environ.get(variable, "").strip()
    if not token:
        raise SumlabError(
            f"--api-key-env {variable}: the environment variable is not set or is empty",
            f"export {variable}=<a long random token> first, or leave out --api-key-env",
        )
    if len(token) < 16:
        log.warning("the API token in %s is short (%d characters): a long random one is safer", variable, len(token))
    return token


def infer_base(adapter_dirs: list[Path]) -> str:
    """The base model the adapters record; all of them must agree."""
    from sumlab.adapters import adapter_base_model

    recorded = sorted({adapter_base_model(directory) for directory in adapter_dirs} - {""})
    if len(recorded) > 1:
        raise SumlabError(f"the adapters were trained on different bases: {', '.join(recorded)}",
                          "pass --model BASE and serve only adapters of that base")
    return recorded[0] if recorded else DEFAULT_BASE


def plan_server(model: str | None, adapter: list[str], merged: list[str], api_key_env: str | None) -> ServerPlan:
    """Check every option (names, paths, token) before any model is loaded."""
    from sumlab.adapters import resolve_adapter_dir
    from sumlab.serve.registry import check_unique_names, parse_named_path, resolve_model_dir

    token = read_token(api_key_env)
    adapters = [parse_named_path(item, "--adapter") for item in adapter]
    merged_models = [parse_named_path(item, "--merged") for item in merged]
    check_unique_names([*adapters, *merged_models])
    adapter_dirs = [resolve_adapter_dir(entry.path) for entry in adapters]
    for entry in merged_models:
        resolve_model_dir(entry.path)
    return ServerPlan(model or infer_base(adapter_dirs), adapters, merged_models, token)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cli_command(
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="base model: hub id or directory (default: the one the adapters were trained on)",
    )] = None,
    adapter: Annotated[Optional[list[str]], typer.Option(
        "--adapter", help="NAME=PATH of a PEFT adapter or its run directory (repeatable)")] = None,
    merged: Annotated[Optional[list[str]], typer.Option(
        "--merged", help="NAME=DIR of a merged or fully fine-tuned model, or its run directory (repeatable)")] = None,
    host: Annotated[str, typer.Option(
        "--host", help="address to listen on; keep 127.0.0.1 unless behind a proxy")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    api_key_env: Annotated[Optional[str], typer.Option(
        "--api-key-env",
        help="require 'Authorization: Bearer <token>', the token read from this environment variable")] = None,
    prompt: Annotated[str, typer.Option(
        "--prompt", help="prompt template of the base and of runs that recorded none")] = "lab",
    dtype: Annotated[str, typer.Option("--dtype", help="auto, float32 or bfloat16")] = "auto",
    random_init: Annotated[bool, typer.Option(
        "--random-init", help="build the base architecture with random weights")] = False,
    allow_pickle: Annotated[bool, typer.Option(
        "--allow-pickle", help="allow pickle .bin weights (only files you trust)")] = False,
    max_batch_size: Annotated[int, typer.Option(
        "--max-batch-size", min=1, help="most dialogues per generate call")] = 8,
    batch_wait_ms: Annotated[float, typer.Option(
        "--batch-wait-ms", min=0, help="how long a dialogue waits for others to batch with")] = 10.0,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", min=1, help="most queued dialogues; beyond it 503")] = 256,
    max_dialogue_chars: Annotated[int, typer.Option(
        "--max-dialogue-chars", min=1, help="longest dialogue (422 beyond it)")] = 8000,
    max_body_bytes: Annotated[int, typer.Option(
        "--max-body-bytes", min=1, help="largest request body (413 beyond it)")] = 1_048_576,
    max_new_tokens_cap: Annotated[int, typer.Option(
        "--max-new-tokens-cap", min=1, help="largest max_new_tokens a request may ask for")] = 256,
    max_beams_cap: Annotated[int, typer.Option(
        "--max-beams-cap", min=1, help="largest num_beams a request may ask for")] = 4,
    no_batching: Annotated[bool, typer.Option(
        "--no-batching", help="one generate call per dialogue (for comparison)")] = False,
) -> None:
    """Serve the base model, its adapters and merged models: JSON API (/v1, docs at /docs), web page at /, /metrics."""
    from sumlab.config import ModelConfig, PromptConfig, build_config
    from sumlab.prompts import resolve_template
    from sumlab.serve.schemas import ServeLimits

    plan = plan_server(model, adapter or [], merged or [], api_key_env)
    base = build_config(ModelConfig, {"name_or_path": plan.model, "random_init": random_init, "dtype": dtype,
                                      "allow_pickle": allow_pickle}, "options")
    template = resolve_template(PromptConfig(name=prompt))
    limits = ServeLimits(
        max_batch_size=max_batch_size, batch_wait_ms=batch_wait_ms, max_queue=max_queue,
        max_dialogue_chars=max_dialogue_chars, max_body_bytes=max_body_bytes, max_new_tokens_cap=max_new_tokens_cap,
        max_beams_cap=max_beams_cap, batching=not no_batching,
    )
    if not is_loopback(host) and plan.token is None:
        log.warning("listening on %s without --api-key-env: anyone who can reach this port can use the models", host)
    serve(plan, base, template, limits, host, port)


def serve(plan: ServerPlan, base, template: str, limits, host: str, port: int) -> None:
    """Load the models and run uvicorn until interrupted."""
    import uvicorn

    from sumlab.serve.app import create_app
    from sumlab.serve.registry import load_registry

    registry = load_registry(base, plan.adapters, plan.merged, template)
    app = create_app(registry, limits, api_token=plan.token)
    auth = "bearer token required" if plan.token else "no auth"
    print(f"serving {', '.join(registry.names)} at http://{host}:{port} ({auth}); page at /, API docs at /docs",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
