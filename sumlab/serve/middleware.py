"""The server's middleware, plain ASGI so that a refused request never reaches the app.

From the outside in: ``RequestContextMiddleware`` (request id, access log), ``RequestMetricsMiddleware``,
``HostCheckMiddleware`` (400 for a Host not on the allow-list), ``BearerAuthMiddleware`` (401),
``BodyLimitMiddleware`` (413).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence

from sumlab.serve.errors import REQUEST_ID_HEADER, clip, error_body, loggable
from sumlab.serve.hosts import host_of
from sumlab.serve.prometheus import ServerMetrics

access_log = logging.getLogger("sumlab.serve.access")

PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/favicon.ico"})
ANY_HOST_PATHS = frozenset({"/health"})  # probes reach a container by its address; health holds no data
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,64}")
REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()


def header(scope, name: bytes) -> bytes | None:
    """The last value of header ``name`` (lower case) in an ASGI scope, or None."""
    found = None
    for key, value in scope["headers"]:
        if key == name:
            found = value
    return found


def request_id(scope) -> str | None:
    return scope.get("state", {}).get("request_id")


async def send_error(send, scope, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = (), **details):
    """Answer ``{"error": message, **details, "request_id": ...}`` with ``status``."""
    body = json.dumps(error_body(message, request_id(scope), **details)).encode()
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*start_headers, *headers]})
    await send({"type": "http.response.body", "body": body})


def client_request_id(scope) -> str:
    """The client's ``X-Request-ID`` when it is short and plain (letters, digits, ``._:/+=@-``), else a new one."""
    raw = header(scope, REQUEST_ID_KEY)
    if raw is not None:
        candidate = raw.decode("latin-1")
        if CLIENT_REQUEST_ID.fullmatch(candidate):
            return candidate
    return uuid.uuid4().hex


def client_address(scope) -> str:
    """The peer of the connection (uvicorn rewrites it from proxy headers only with --trust-proxy-headers)."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


class RequestContextMiddleware:
    """Give each request an id (``request.state.request_id``, the ``X-Request-ID`` answer header) and log it.

    The access log line has the client, the method, the path without its query string (a token sent
    as ``?token=`` stays out of the log), the status, the duration and the request id.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = client_request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        status, started = 500, time.perf_counter()  # 500 if the app raises: the outermost handler answers so

        async def tag(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(key.lower() == REQUEST_ID_KEY for key, _ in headers):
                    headers.append((REQUEST_ID_KEY, rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, tag)
        finally:
            access_log.info(
                '%s "%s %s" %d %.1fms id=%s',
                client_address(scope),
                scope["method"],
                loggable(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
                rid,
            )


class HostCheckMiddleware:
    """400 for a request whose ``Host`` header names no allowed host (DNS rebinding); /health takes any."""

    def __init__(self, app, allowed: frozenset[str]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in ANY_HOST_PATHS:
            return await self.app(scope, receive, send)
        raw = header(scope, b"host")
        text = raw.decode("latin-1") if raw is not None else ""
        if host_of(text) in self.allowed:
            return await self.app(scope, receive, send)
        names = ", ".join(sorted(self.allowed))
        shown = f"Host header {clip(text)!r}" if raw is not None else "no Host header"
        await send_error(
            send, scope, 400, f"invalid host: {shown}; this server answers to {names} (sumlab serve --allowed-host)"
        )


class RequestMetricsMiddleware:
    """Count every request by endpoint and status, and time it; unknown paths count as ``other``."""

    def __init__(self, app, metrics: ServerMetrics, known_paths: frozenset[str]):
        self.app, self.metrics, self.known_paths = app, metrics, known_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in self.known_paths else "other"
        status = 500  # if the app raises, the error middleware outside answers 500
        started = time.perf_counter()

        async def record_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.request_seconds.labels(endpoint).observe(time.perf_counter() - started)


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <token>`` on every path but the public ones (401 otherwise)."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        value = header(scope, b"authorization") or b""
        scheme, _, credentials = value.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token):
            return await self.app(scope, receive, send)
        message = "missing bearer token" if not value else "invalid bearer token"
        await send_error(
            send,
            scope,
            401,
            f"{message}: send the header 'Authorization: Bearer <token>'",
            headers=[(b"www-authenticate", b'Bearer realm="sumlab"')],
        )


class BodyLimitMiddleware:
    """413 for a body over ``limit`` bytes: by its Content-Length, or by counting what actually arrives.

    The body is read here (at most ``limit`` bytes) and handed on whole; later ``receive`` calls pass
    through, so that the app still learns when the client disconnects.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return await send_error(send, scope, 400, "invalid Content-Length header")
            if int(declared) > self.limit:
                return await self.too_large(send, scope)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self.too_large(send, scope)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def too_large(self, send, scope) -> None:
        message = f"request body over this server's limit of {self.limit} bytes (max_body_bytes)"
        await send_error(send, scope, 413, message, limit=self.limit)
