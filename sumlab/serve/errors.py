"""Errors as JSON: ``{"error": "<what went wrong>", ..., "request_id": "..."}``, never a traceback.

Bodies quote at most a short prefix of what the client sent (``clip``): a 500 KB model name gets
a small answer. The request id comes from ``RequestContextMiddleware`` (``request.state``).
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer; it never reaches anyone
ECHO_CHARS = 64  # the most characters of a client's input that an error message quotes
REQUEST_ID_HEADER = "X-Request-ID"


class ApiError(Exception):
    """An error answered as ``{"error": message, **details}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict | None = None, **details):
        super().__init__(message)
        self.status, self.message, self.headers, self.details = status, message, headers, details


class ClientGone(Exception):
    """The client disconnected while its dialogues were queued or being generated."""


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """At most ``limit`` characters of ``text`` (then ``...``), safe to encode as UTF-8 (lone surrogates escaped)."""
    short = text if len(text) <= limit else text[:limit] + "..."
    return short.encode("utf-8", "backslashreplace").decode("utf-8")


def loggable(text: str, limit: int = 200) -> str:
    """``text`` clipped and escaped for a log line: no newline or control character can forge another line."""
    return clip(text, limit).encode("unicode_escape").decode("ascii")


def error_body(message: str, request_id: str | None, **details) -> dict:
    """The JSON body of every error answer."""
    body = {"error": message, **details}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(request: Request, status: int, message: str, headers: dict | None = None, **details):
    """A JSON error answer carrying the request's id (in the body and, for the outermost errors, the header)."""
    request_id = request_id_of(request)
    headers = dict(headers or {})
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    return JSONResponse(error_body(message, request_id, **details), status_code=status, headers=headers)


async def api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(request, exc.status, exc.message, exc.headers, **exc.details)


async def client_gone_handler(request: Request, exc: ClientGone) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [validation_detail(error) for error in exc.errors()[:10]]
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    count = len(exc.errors())
    more = f" (and {count - 1} more)" if count > 1 else ""
    message = f"invalid request: {first['field']}: {first['message']}{more}"
    return error_response(request, 422, message, details=details)


def validation_detail(error: dict) -> dict:
    """One validation problem as ``{field, message, type}``; never echoes the input (it may be huge)."""
    location = [str(part) for part in error.get("loc", ())]
    if location and location[0] == "body":
        location = location[1:]
    field = clip(".".join(location)) or "body"  # a field name is client input too (an unknown key)
    message = clip(str(error.get("msg", "invalid")).removeprefix("Value error, "), 200)
    if error.get("type") == "json_invalid":
        field = "body"
        reason = clip(str((error.get("ctx") or {}).get("error", "")), 200)
        message = f"malformed JSON{': ' + reason if reason else ''} at character {location[0] if location else '?'}"
    return {"field": field, "message": message, "type": error.get("type", "")}


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return error_response(request, exc.status_code, clip(detail, 200), getattr(exc, "headers", None))


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # one line here: the server (uvicorn) logs the traceback, which Starlette re-raises after this response
    log.error(
        "unexpected error on %s %s (request %s): %s",
        request.method,
        loggable(request.url.path),
        request_id_of(request),
        type(exc).__name__,
    )
    return error_response(request, 500, "internal server error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON."""
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(ClientGone, client_gone_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
