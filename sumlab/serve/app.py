"""The FastAPI app: JSON API under /v1, the web page at /, health, Prometheus metrics, OpenAPI at /docs.

Every error is JSON, ``{"error": "<what went wrong>", ...}``, never a traceback: validation errors,
HTTP errors and limits have handlers, and anything unexpected becomes a 500 whose traceback goes
to the server log only.

With a token (``--api-key-env``), every path needs ``Authorization: Bearer <token>`` except the
public ones: the page (``/``, which holds no data and asks for the token), ``/health`` (for load
balancers and probes), and the API docs (``/docs``, ``/openapi.json``), which describe the API
but expose no model or traffic. ``/metrics`` is protected: it reveals the models and their use.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from sumlab import __version__
from sumlab.config import GenerationSettings
from sumlab.serve.batcher import (
    Completed,
    MicroBatcher,
    QueueFull,
    ShuttingDown,
    WorkItem,
)
from sumlab.serve.prometheus import CONTENT_TYPE, ServerMetrics
from sumlab.serve.registry import ModelRegistry, ServedModel
from sumlab.serve.schemas import (
    BASE_MODEL_NAME,
    BatchRequest,
    BatchResponse,
    CompareRequest,
    CompareResponse,
    ErrorResponse,
    GenerationOptions,
    HealthResponse,
    ModelsResponse,
    ServeLimits,
    SummarizeRequest,
    SummaryResult,
    TokenCounts,
)
from sumlab.text.prompts import render_prompt

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/favicon.ico"})
BEARER_SCHEME = HTTPBearer(auto_error=False, description="the token the server read from --api-key-env")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer; it never reaches anyone


class ApiError(Exception):
    """An error answered as ``{"error": message, **details}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict | None = None, **details):
        super().__init__(message)
        self.status, self.message, self.headers, self.details = status, message, headers, details


class ClientGone(Exception):
    """The client disconnected while its dialogues were queued or being generated."""


@dataclass
class ServerState:
    """What the endpoints share: the models, the limits, the batcher and the metrics."""

    registry: ModelRegistry
    limits: ServeLimits
    batcher: MicroBatcher
    metrics: ServerMetrics
    auth: bool
    page: str
    page_headers: dict[str, str]

    def lookup(self, name: str) -> ServedModel:
        """The served model called ``name``; 404 listing the available ones if none is."""
        model = self.registry.get(name)
        if model is None:
            available = self.registry.names
            raise ApiError(404, f"unknown model {name!r}; available: {', '.join(available)}", available=available)
        return model

    def check_dialogue(self, dialogue: str, field: str) -> None:
        """422 naming the limit when ``dialogue`` is longer than ``max_dialogue_chars``."""
        limit = self.limits.max_dialogue_chars
        if len(dialogue) > limit:
            raise ApiError(
                422,
                f"{field} has {len(dialogue)} characters, over this server's limit of {limit} (max_dialogue_chars)",
                field=field,
                limit=limit,
            )

    def settings(self, options: GenerationOptions | None) -> GenerationSettings:
        """The decoding settings of a request, within the server's caps (422 naming the cap otherwise)."""
        options = options or GenerationOptions()
        limits = self.limits
        max_new_tokens = options.max_new_tokens or min(limits.default_max_new_tokens, limits.max_new_tokens_cap)
        num_beams = options.num_beams or 1
        for field, value, cap, option in (
            ("max_new_tokens", max_new_tokens, limits.max_new_tokens_cap, "max_new_tokens_cap"),
            ("num_beams", num_beams, limits.max_beams_cap, "max_beams_cap"),
        ):
            if value > cap:
                raise ApiError(
                    422,
                    f"generation.{field}={value} is over this server's limit of {cap} ({option})",
                    field=f"generation.{field}",
                    limit=cap,
                )
        return GenerationSettings(
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            no_repeat_ngram_size=options.no_repeat_ngram_size or 0,
            length_penalty=1.0 if options.length_penalty is None else options.length_penalty,
            max_source_length=limits.max_source_tokens,
            batch_size=limits.effective_batch_size,
        )

    async def run(
        self, request: Request, work: Sequence[tuple[ServedModel, str]], settings: GenerationSettings
    ) -> list[Completed]:
        """Queue one dialogue per (model, dialogue) pair and wait for all, or for the client to leave."""
        items = [WorkItem(model, render_prompt(model.template, dialogue), settings) for model, dialogue in work]
        try:
            self.batcher.submit(items)
        except QueueFull:
            raise ApiError(
                503,
                f"the server is busy: {self.batcher.depth} dialogues are queued and the limit is "
                f"{self.limits.max_queue} (max_queue); retry shortly",
                headers={"Retry-After": "1"},
                limit=self.limits.max_queue,
            ) from None
        except ShuttingDown:
            raise ApiError(503, "the server is shutting down") from None
        waiting = asyncio.gather(*(asyncio.wrap_future(item.future) for item in items))
        left = asyncio.ensure_future(wait_for_disconnect(request))
        try:
            done, _ = await asyncio.wait({waiting, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this handler is cancelled
            left.cancel()
            left.add_done_callback(_retrieve_outcome)
            if not waiting.done():
                for item in items:
                    item.abandoned = True  # a generate call whose clients have all left stops early
                waiting.cancel()  # and dialogues that haven't started are skipped; see MicroBatcher
                waiting.add_done_callback(_retrieve_outcome)
        if waiting not in done:
            raise ClientGone()
        try:
            return waiting.result()
        except ShuttingDown:
            raise ApiError(503, "the server is shutting down") from None


def _retrieve_outcome(future: asyncio.Future) -> None:
    """Mark an abandoned future's outcome as seen, so asyncio doesn't log 'exception was never retrieved'."""
    if not future.cancelled():
        future.exception()


async def wait_for_disconnect(request: Request) -> None:
    """Return when the client disconnects. Only call it once the request body has been read."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def server_state(request: Request) -> ServerState:
    return request.app.state.server


def summary_result(model: str, completed: Completed, started: float) -> SummaryResult:
    generated = completed.generated
    return SummaryResult(
        summary=generated.text,
        model=model,
        latency_ms=round((completed.finished - started) * 1000, 2),
        tokens=TokenCounts(input=generated.input_tokens, output=generated.output_tokens),
        batch_size=completed.batch_size,
    )


ERROR_RESPONSES = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        401: "missing or wrong bearer token (when the server has one)",
        404: "unknown model; the body lists the available ones",
        413: "request body over max_body_bytes",
        422: "invalid request, or a dialogue or generation setting over the server's limits",
        503: "the queue is full; retry shortly",
    }.items()
}

api = APIRouter(prefix="/v1", tags=["summaries"], responses=ERROR_RESPONSES)
pages = APIRouter()


@api.get("/models", response_model=ModelsResponse)
async def list_models(request: Request) -> ModelsResponse:
    """The models this server answers with, and the limits on requests."""
    server = server_state(request)
    return ModelsResponse(
        models=[model.info() for model in server.registry], default=BASE_MODEL_NAME, limits=server.limits.public()
    )


@api.post("/summarize", response_model=SummaryResult)
async def summarize_dialogue(body: SummarizeRequest, request: Request) -> SummaryResult:
    """Summarize one dialogue with one model."""
    started = time.perf_counter()
    server = server_state(request)
    model = server.lookup(body.model)
    server.check_dialogue(body.dialogue, "dialogue")
    settings = server.settings(body.generation)
    [completed] = await server.run(request, [(model, body.dialogue)], settings)
    return summary_result(model.name, completed, started)


@api.post("/summarize/batch", response_model=BatchResponse)
async def summarize_batch(body: BatchRequest, request: Request) -> BatchResponse:
    """Summarize several dialogues, each with its own model (``items``) or all with one (``dialogues``)."""
    started = time.perf_counter()
    server = server_state(request)
    entries = body.entries()
    limit = server.limits.max_batch_items
    if len(entries) > limit:
        raise ApiError(
            422,
            f"{len(entries)} dialogues in one request, over this server's limit of {limit} (max_batch_items)",
            field="items" if body.items else "dialogues",
            limit=limit,
        )
    work = []
    for index, (dialogue, name) in enumerate(entries):
        work.append((server.lookup(name), dialogue))
        server.check_dialogue(dialogue, f"items[{index}].dialogue" if body.items else f"dialogues[{index}]")
    settings = server.settings(body.generation)
    completed = await server.run(request, work, settings)
    results = [summary_result(model.name, done, started) for (model, _), done in zip(work, completed)]
    return BatchResponse(results=results, latency_ms=round((time.perf_counter() - started) * 1000, 2))


@api.post("/compare", response_model=CompareResponse)
async def compare_models(body: CompareRequest, request: Request) -> CompareResponse:
    """Summarize one dialogue with several models, side by side (one batch where the models allow)."""
    started = time.perf_counter()
    server = server_state(request)
    models = [server.lookup(name) for name in body.models]
    server.check_dialogue(body.dialogue, "dialogue")
    settings = server.settings(body.generation)
    completed = await server.run(request, [(model, body.dialogue) for model in models], settings)
    return CompareResponse(
        dialogue_chars=len(body.dialogue),
        results=[summary_result(model.name, done, started) for model, done in zip(models, completed)],
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )


@pages.get("/", response_class=HTMLResponse, include_in_schema=False)
async def web_page(request: Request) -> HTMLResponse:
    server = server_state(request)
    return HTMLResponse(server.page, headers=server.page_headers)


@pages.get("/health", response_model=HealthResponse, tags=["operations"])
async def health(request: Request) -> HealthResponse:
    """Liveness: the server is up and its worker takes requests. Never needs the token."""
    server = server_state(request)
    return HealthResponse(status="ok", models=len(server.registry), queue_depth=server.batcher.depth, auth=server.auth)


@pages.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics: requests by endpoint and status, latencies, queue depth, batch sizes."""
    return PlainTextResponse(server_state(request).metrics.render(), media_type=CONTENT_TYPE)


# --- middleware: plain ASGI, so that a rejected request never reaches the app ---------------------


async def send_error(send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = (), **details) -> None:
    body = json.dumps({"error": message, **details}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
            self.metrics.requests.inc(endpoint, str(status))
            self.metrics.request_seconds.observe(time.perf_counter() - started, endpoint)


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <token>`` on every path but the public ones (401 otherwise)."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token):
            return await self.app(scope, receive, send)
        message = "missing bearer token" if not header else "invalid bearer token"
        await send_error(
            send,
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
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                return await send_error(send, 400, "invalid Content-Length header")
            if int(declared) > self.limit:
                return await self.too_large(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self.too_large(send)
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

    async def too_large(self, send) -> None:
        await send_error(
            send, 413, f"request body over this server's limit of {self.limit} bytes (max_body_bytes)", limit=self.limit
        )


# --- exception handlers: JSON always ----------------------------------------------------------------


async def api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message, **exc.details}, status_code=exc.status, headers=exc.headers)


async def client_gone_handler(request: Request, exc: ClientGone) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [validation_detail(error) for error in exc.errors()]
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return JSONResponse(
        {"error": f"invalid request: {first['field']}: {first['message']}{more}", "details": details}, status_code=422
    )


def validation_detail(error: dict) -> dict:
    """One validation problem as ``{field, message, type}``; never echoes the input (it may be huge)."""
    location = [str(part) for part in error.get("loc", ())]
    if location and location[0] == "body":
        location = location[1:]
    field = ".".join(location) or "body"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "json_invalid":
        field = "body"
        reason = (error.get("ctx") or {}).get("error", "")
        message = f"malformed JSON{': ' + reason if reason else ''} at character {location[0] if location else '?'}"
    return {"field": field, "message": message, "type": error.get("type", "")}


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # one line here: the server (uvicorn) logs the traceback, which Starlette re-raises after this response
    log.error("unexpected error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse({"error": "internal server error; the server log has the details"}, status_code=500)


# --- the app --------------------------------------------------------------------------------------


def load_page() -> str:
    return (resources.files("sumlab.serve") / "static" / "index.html").read_text(encoding="utf-8")


def page_headers(page: str) -> dict[str, str]:
    """A strict Content-Security-Policy that allows only the page's own inline script and style."""

    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in bodies
        )

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


@asynccontextmanager
async def lifespan(app: FastAPI):
    server: ServerState = app.state.server
    server.batcher.start()
    try:
        yield
    finally:
        await asyncio.to_thread(server.batcher.stop)


def create_app(registry: ModelRegistry, limits: ServeLimits | None = None, api_token: str | None = None) -> FastAPI:
    """The server's FastAPI app for ``registry``.

    Args:
        limits: batching, queue, size and generation limits (defaults: ``ServeLimits()``).
        api_token: when given, every non-public path needs ``Authorization: Bearer <api_token>``.
    """
    limits = limits or ServeLimits()
    if api_token is not None and not api_token:
        raise ValueError("api_token must not be empty")
    batcher = MicroBatcher(
        limits.effective_batch_size, limits.batch_wait_ms if limits.batching else 0.0, limits.max_queue
    )
    server_metrics = ServerMetrics(queue_depth=lambda: batcher.depth, queue_capacity=limits.max_queue)
    batcher.metrics = server_metrics
    page = load_page()
    app = FastAPI(
        title="sumlab serve",
        version=__version__,
        summary="Dialogue summarizers on one base model: the zero-shot base, its adapters, merged models.",
        lifespan=lifespan,
    )
    app.state.server = ServerState(
        registry, limits, batcher, server_metrics, api_token is not None, page, page_headers(page)
    )
    # the bearer scheme is declared for the OpenAPI docs (their Authorize button); BearerAuthMiddleware enforces it
    app.include_router(api, dependencies=[Security(BEARER_SCHEME)] if api_token is not None else [])
    app.include_router(pages)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(ClientGone, client_gone_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    app.add_middleware(BodyLimitMiddleware, limit=limits.max_body_bytes)
    if api_token is not None:
        app.add_middleware(BearerAuthMiddleware, token=api_token)
    known = frozenset(route.path for router in (api, pages) for route in router.routes) | PUBLIC_PATHS
    app.add_middleware(RequestMetricsMiddleware, metrics=server_metrics, known_paths=known)  # outermost: sees all
    return app
