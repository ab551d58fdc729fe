"""The FastAPI app: JSON API under /v1, the web page at /, health, Prometheus metrics, OpenAPI at /docs.

Every error is JSON, ``{"error": "<what went wrong>", ..., "request_id": ...}``, never a traceback
(``sumlab.serve.errors``); anything unexpected becomes a 500 whose traceback goes to the server log
only. Every answer carries an ``X-Request-ID`` header (the client's, or a new one), which the access
log line has too (``sumlab.serve.middleware``).

With a token (``--api-key-env``), every path needs ``Authorization: Bearer <token>`` except the
public ones: the page (``/``, which holds no data and asks for the token), ``/health`` (for load
balancers and probes), and the API docs (``/docs``, ``/openapi.json``), which describe the API
but expose no model or traffic. ``/metrics`` is protected: it reveals the models and their use.

A prompt is never cut: a dialogue whose prompt has more tokens than the server's ``max_source_tokens``
(``--max-source-tokens``), or than the model's positions hold, gets a 422 that names the limit.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer

from sumlab import __version__
from sumlab.config import GenerationSettings
from sumlab.serve.batcher import (
    Completed,
    MicroBatcher,
    QueueFull,
    ShuttingDown,
    WorkItem,
)
from sumlab.serve.errors import ApiError, ClientGone, clip, install_error_handlers
from sumlab.serve.hosts import normalize_host
from sumlab.serve.middleware import (
    PUBLIC_PATHS,
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    HostCheckMiddleware,
    RequestContextMiddleware,
    RequestMetricsMiddleware,
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

BEARER_SCHEME = HTTPBearer(auto_error=False, description="the token the server read from --api-key-env")
SHUTTING_DOWN = "the server is shutting down; retry with another instance or once it is back"


Entry = tuple[ServedModel, str, str]  # a model, a dialogue, and the request field the dialogue came from


def prompt_limit_error(model: ServedModel, field: str, tokens: int, limit: int, settings: GenerationSettings):
    """The 422 for a prompt of ``tokens`` over ``limit``: the server's (``--max-source-tokens``) or the model's."""
    if limit == settings.max_source_length:
        reason = f"this server's limit of {limit} (max_source_tokens, set by --max-source-tokens)"
    else:
        holds = f"its {model.runner.positions} positions"
        if model.runner.positions != limit:  # a causal model's positions hold the summary too
            holds += f" less generation.max_new_tokens={settings.max_new_tokens}"
        reason = f"the limit of {limit} that model {model.name} can read ({holds})"
    return ApiError(
        422,
        f"{field} gives a prompt of {tokens} tokens for model {model.name}, over {reason}; "
        "the server does not cut prompts: send a shorter dialogue",
        field=field,
        limit=limit,
        tokens=tokens,
    )


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
            message = f"unknown model {clip(name)!r}; available: {', '.join(available)}"
            raise ApiError(404, message, available=available)
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

    def admit(self, work: Sequence[Entry], settings: GenerationSettings) -> list[WorkItem]:
        """Each (model, dialogue, field) as a work item holding its prompt's token ids, all within the limits.

        Raises:
            ApiError: 422 for the first prompt over its limit (``prompt_limit_error``); nothing is queued then.
        """
        items = []
        for model, dialogue, field in work:
            ids = model.runner.encode(render_prompt(model.template, dialogue))
            limit = model.runner.source_limit(settings)
            if limit is not None and len(ids) > limit:
                raise prompt_limit_error(model, field, len(ids), limit, settings)
            items.append(WorkItem(model, ids, settings))
        return items

    async def run(self, request: Request, work: Sequence[Entry], settings: GenerationSettings) -> list[Completed]:
        """Queue one dialogue per (model, dialogue, field) and wait for all, or for the client to leave."""
        items = await asyncio.to_thread(self.admit, work, settings)  # tokenizing a long batch takes a while
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
            raise ApiError(503, SHUTTING_DOWN) from None
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
            raise ApiError(503, SHUTTING_DOWN) from None

    def begin_shutdown(self) -> None:
        """Refuse new work (503) and give what is queued ``limits.drain_timeout_s`` to finish."""
        self.batcher.close(self.limits.drain_timeout_s)


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
        400: "a Host header this server doesn't answer to (see --allowed-host)",
        401: "missing or wrong bearer token (when the server has one)",
        404: "unknown model; the body lists the available ones",
        413: "request body over max_body_bytes",
        422: "invalid request, or a dialogue, its prompt's tokens or a generation setting over the limits",
        503: "the queue is full (retry shortly), or the server is shutting down",
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
    [completed] = await server.run(request, [(model, body.dialogue, "dialogue")], settings)
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
        field = f"items[{index}].dialogue" if body.items else f"dialogues[{index}]"
        work.append((server.lookup(name), dialogue, field))
        server.check_dialogue(dialogue, field)
    settings = server.settings(body.generation)
    completed = await server.run(request, work, settings)
    results = [summary_result(model.name, done, started) for (model, _, _), done in zip(work, completed)]
    return BatchResponse(results=results, latency_ms=round((time.perf_counter() - started) * 1000, 2))


@api.post("/compare", response_model=CompareResponse)
async def compare_models(body: CompareRequest, request: Request) -> CompareResponse:
    """Summarize one dialogue with several models, side by side (one batch where the models allow)."""
    started = time.perf_counter()
    server = server_state(request)
    models = [server.lookup(name) for name in body.models]
    server.check_dialogue(body.dialogue, "dialogue")
    settings = server.settings(body.generation)
    completed = await server.run(request, [(model, body.dialogue, "dialogue") for model in models], settings)
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


@pages.head("/health", include_in_schema=False)
async def health_head(request: Request) -> Response:
    """Liveness for probes that send HEAD: 200 and no body."""
    return Response(status_code=200)


@pages.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests by endpoint and status, latencies, queue depth, batch sizes."""
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE)


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


def create_app(
    registry: ModelRegistry,
    limits: ServeLimits | None = None,
    api_token: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
) -> FastAPI:
    """The server's FastAPI app for ``registry``.

    Args:
        limits: batching, queue, size, generation and drain limits (defaults: ``ServeLimits()``).
        api_token: when given, every non-public path needs ``Authorization: Bearer <api_token>``.
        allowed_hosts: the names the ``Host`` header may give (``sumlab.serve.hosts.allowed_hosts``);
            other hosts get 400. None checks no Host: for an app used in-process, as tests do.
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
    install_error_handlers(app)
    add_middleware(app, limits, api_token, allowed_hosts, server_metrics)
    return app


def add_middleware(
    app: FastAPI,
    limits: ServeLimits,
    api_token: str | None,
    allowed_hosts: Iterable[str] | None,
    metrics: ServerMetrics,
) -> None:
    """The middleware stack; each ``add_middleware`` wraps the ones before it, so the last added runs first."""
    app.add_middleware(BodyLimitMiddleware, limit=limits.max_body_bytes)
    if api_token is not None:
        app.add_middleware(BearerAuthMiddleware, token=api_token)
    if allowed_hosts is not None:
        app.add_middleware(HostCheckMiddleware, allowed=frozenset(normalize_host(name) for name in allowed_hosts))
    known = frozenset(route.path for router in (api, pages) for route in router.routes) | PUBLIC_PATHS
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, known_paths=known)
    app.add_middleware(RequestContextMiddleware)  # outermost: every answer gets its request id and a log line
