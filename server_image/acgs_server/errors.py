"""Typed errors and the one middleware that turns them into HTTP answers (KServe's shape).

Handlers raise; they never build error responses. `error_middleware` maps each `ServerError` to
its status code and a JSON body `{"error": {"type", "message", ...}}`, gives every answer an
`X-Request-ID`, and counts predict requests in the metrics whatever their outcome. Anything else
a handler raises is a 500 `InternalError` that is logged with its traceback, never a bare aiohttp
page.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A client's request id is echoed in a header and written to logs: bounded, and only characters
# that cannot split a header or a log line.
MAX_REQUEST_ID_LENGTH = 128
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,%d}" % MAX_REQUEST_ID_LENGTH)
# Generated ids: unique per process start and cheap (uuid4 reads the OS RNG on every request,
# which showed up in the serving profile).
_ID_PREFIX = f"{os.getpid():x}{int(time.time() * 1000):x}"
_ID_COUNTER = itertools.count(1)
REQUEST_ID_KEY = "acgs_request_id"


class ServerError(Exception):
    """An answer other than 200. Subclasses fix `status` and `kind`; `extra` goes into the body."""

    status = 500
    kind = "InternalError"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message, self.extra = message, extra

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.kind, "message": self.message, **self.extra}}


class InvalidInput(ServerError):
    """The body must be refused (KServe's InvalidInput); names the first bad field, lists all."""

    status, kind = 400, "InvalidInput"

    def __init__(self, field: str, message: str, value: Any = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        details = details if details is not None else [{"field": field, "message": message, "input": value}]
        super().__init__(message, field=field, details=details)
        self.field, self.details = field, details


class ConstitutionalHashMismatch(InvalidInput):
    """The request's constitutional hash is missing or is not the one this server serves."""

    kind = "ConstitutionalHashMismatch"


class NotReady(ServerError):
    status, kind = 503, "NotReady"


class ShuttingDown(ServerError):
    status, kind = 503, "ShuttingDown"


class ModelUnavailable(ServerError):
    """The model process died: this server can never answer again (liveness fails too)."""

    status, kind = 503, "ModelUnavailable"


class GenerationFailed(ServerError):
    status, kind = 500, "GenerationFailed"


def json_response(body: Any, status: int = 200) -> web.Response:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return web.Response(text=text, status=status, content_type="application/json")


def request_id(request: web.Request) -> str:
    return str(request[REQUEST_ID_KEY])


def _client_request_id(request: web.Request) -> str:
    """The client's X-Request-ID, or a fresh one. An unusable header is refused (400) rather than
    silently replaced, so the client learns why its id did not come back."""
    given = request.headers.get(REQUEST_ID_HEADER)
    generated = f"{_ID_PREFIX}-{next(_ID_COUNTER)}"
    if given is None or given == "":
        return generated
    if REQUEST_ID_PATTERN.fullmatch(given) is None:
        request[REQUEST_ID_KEY] = generated
        raise InvalidInput(
            REQUEST_ID_HEADER,
            f"{REQUEST_ID_HEADER}: expected 1-{MAX_REQUEST_ID_LENGTH} characters of A-Z a-z 0-9 . _ : -, "
            f"got {len(given)} characters",
            given[:64],
        )
    return given


Observer = Callable[[web.Request, int, float], None]


def error_middleware(observe: Observer) -> Any:
    """The middleware: request id, typed errors → status codes, `observe(request, status, seconds)`."""

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        started = time.perf_counter()
        response: web.StreamResponse
        try:
            request[REQUEST_ID_KEY] = _client_request_id(request)
            response = await handler(request)
        except ServerError as error:
            if error.status >= 500:
                logger.error("request %s: %s: %s", request.get(REQUEST_ID_KEY), error.kind, error.message)
            response = json_response(error.body(), status=error.status)
        except web.HTTPException as error:
            # aiohttp's own refusals (404, 405, 413 body too large) in the same JSON shape.
            response = json_response({"error": {"type": error.reason.replace(" ", ""), "message": error.text}},
                                     status=error.status)
        except Exception as error:  # noqa: BLE001 - the last line: a logged 500, never a bare page
            logger.exception("request %s failed", request.get(REQUEST_ID_KEY))
            response = json_response({"error": {"type": "InternalError", "message": repr(error)[:500]}}, status=500)
        response.headers[REQUEST_ID_HEADER] = str(request.get(REQUEST_ID_KEY, ""))
        observe(request, response.status, time.perf_counter() - started)
        return response

    return middleware
