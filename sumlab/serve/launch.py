"""What ``sumlab serve`` will serve and where, checked before anything loads, and the server's start.

Heavy imports (torch, FastAPI, uvicorn) happen inside the functions that need them.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sumlab.config import DEFAULT_MODEL
from sumlab.errors import SumlabError

if TYPE_CHECKING:
    from sumlab.serve.registry import NamedPath

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5  # after the drain timeout, how long uvicorn still waits for answers before it cuts connections


@dataclass(frozen=True)
class ServerPlan:
    """What to serve, checked before anything is loaded."""

    model: str
    adapters: list[NamedPath]
    merged: list[NamedPath]
    token: str | None


@dataclass(frozen=True)
class Listener:
    """Where the server listens and whom it answers.

    Attributes:
        allowed_hosts: the names the ``Host`` header may give (``sumlab.serve.hosts.allowed_hosts``).
        trust_proxy_headers: take the client's address from ``X-Forwarded-For`` (of a proxy on 127.0.0.1).
    """

    host: str
    port: int
    allowed_hosts: frozenset[str]
    trust_proxy_headers: bool = False


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


def check_exposure(host: str, token: str | None, insecure_no_auth: bool) -> None:
    """Refuse to listen beyond loopback without a token, unless the operator insists (``--insecure-no-auth``).

    Raises:
        SumlabError: for a non-loopback ``host`` without a token or ``insecure_no_auth``.
    """
    if is_loopback(host) or token is not None:
        return
    if not insecure_no_auth:
        raise SumlabError(
            f"--host {host} listens beyond loopback without a token",
            "require one with --api-key-env VARIABLE, or pass --insecure-no-auth to serve without auth anyway",
        )
    log.warning("listening on %s without a token (--insecure-no-auth): anyone who reaches this port can use it", host)


def plan_listener(host: str, port: int, allowed_host: list[str], trust_proxy_headers: bool) -> Listener:
    """The listener of ``--host``, ``--port``, ``--allowed-host`` (names added to the loopback ones).

    Raises:
        SumlabError: for an ``--allowed-host`` that is not a host name or an IP address.
    """
    from sumlab.serve.hosts import allowed_hosts, normalize_host

    for name in allowed_host:
        try:
            normalize_host(name)
        except ValueError as exc:
            raise SumlabError(f"--allowed-host: {exc}", "e.g. --allowed-host summaries.example.org") from None
    if not is_loopback(host) and not allowed_host:
        log.warning(
            "listening on %s, but answering only to Host 127.0.0.1, localhost and ::1: "
            "add --allowed-host NAME for each name clients use",
            host,
        )
    return Listener(host, port, allowed_hosts(allowed_host), trust_proxy_headers)


def check_drain_timeout(seconds: float) -> float:
    """``--drain-timeout``: a number of seconds, 0 or more.

    Raises:
        SumlabError: for a negative, infinite or NaN value.
    """
    if not (math.isfinite(seconds) and seconds >= 0):
        raise SumlabError(f"--drain-timeout {seconds}: must be 0 or more seconds", "e.g. --drain-timeout 30")
    return seconds


def log_config() -> dict:
    """uvicorn's logging, plus ``sumlab.serve.access``: the access log line that replaces uvicorn's own."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["sumlab_access"] = {
        "formatter": "default",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["sumlab.serve.access"] = {"handlers": ["sumlab_access"], "level": "INFO", "propagate": False}
    return config


def serve(
    plan: ServerPlan,
    base,
    template: str,
    limits,
    listener: Listener,
    engine: str = "torch",
    compute_type: str = "auto",
) -> None:
    """Load the models and run uvicorn until interrupted; SIGTERM drains for at most ``limits.drain_timeout_s``.

    ``engine`` and ``compute_type`` (checked: ``sumlab.cli.options.check_engine_options``) say what generates.
    """
    import uvicorn

    from sumlab.serve.app import create_app
    from sumlab.serve.registry import load_registry

    registry = load_registry(base, plan.adapters, plan.merged, template, engine, compute_type)
    app = create_app(registry, limits, api_token=plan.token, allowed_hosts=listener.allowed_hosts)
    auth = "bearer token required" if plan.token else "no auth"
    host, port = listener.host, listener.port
    print(
        f"serving {', '.join(registry.names)} with {engine} at http://{host}:{port} ({auth}); "
        "page at /, API docs at /docs",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=log_config(),
        access_log=False,  # RequestContextMiddleware logs each request: no query string, with its request id
        proxy_headers=listener.trust_proxy_headers,
        server_header=False,
        # a last resort: the batcher has answered every queued request with 503 by the drain timeout
        timeout_graceful_shutdown=math.ceil(limits.drain_timeout_s) + SHUTDOWN_GRACE_S,
    )
    draining_server(config, app.state.server.begin_shutdown).run()


def draining_server(config, begin_shutdown: Callable[[], None]):
    """A ``uvicorn.Server`` that calls ``begin_shutdown`` (the batcher's drain) as its shutdown begins."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            begin_shutdown()  # new work gets 503 now; queued work has until the drain timeout
            await super().shutdown(sockets)

    return DrainingServer(config)
