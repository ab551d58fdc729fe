"""What ``sumlab serve`` will serve, checked before anything loads, and the server's start.

Heavy imports (torch, FastAPI, uvicorn) happen inside the functions that need them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sumlab.config import DEFAULT_MODEL
from sumlab.errors import SumlabError

if TYPE_CHECKING:
    from sumlab.serve.registry import NamedPath

log = logging.getLogger(__name__)


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
    from sumlab.models.adapters import adapter_base_model

    recorded = sorted({adapter_base_model(directory) for directory in adapter_dirs} - {""})
    if len(recorded) > 1:
        raise SumlabError(
            f"the adapters were trained on different bases: {', '.join(recorded)}",
            "pass --model BASE and serve only adapters of that base",
        )
    return recorded[0] if recorded else DEFAULT_MODEL


def plan_server(model: str | None, adapter: list[str], merged: list[str], api_key_env: str | None) -> ServerPlan:
    """Check every option (names, paths, token) before any model is loaded."""
    from sumlab.models.adapters import resolve_adapter_dir
    from sumlab.serve.registry import (
        check_unique_names,
        parse_named_path,
        resolve_model_dir,
    )

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


def serve(plan: ServerPlan, base, template: str, limits, host: str, port: int) -> None:
    """Load the models and run uvicorn until interrupted."""
    import uvicorn

    from sumlab.serve.app import create_app
    from sumlab.serve.registry import load_registry

    registry = load_registry(base, plan.adapters, plan.merged, template)
    app = create_app(registry, limits, api_token=plan.token)
    auth = "bearer token required" if plan.token else "no auth"
    print(
        f"serving {', '.join(registry.names)} at http://{host}:{port} ({auth}); page at /, API docs at /docs",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
