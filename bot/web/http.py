"""HTTP edges shared by every route: JSON error bodies, a request-size limit, security headers, and
the client's real address behind a trusted proxy."""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.logs import bind
from storage.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

MESSAGES_ID = {
    400: "Permintaan tidak bisa dibaca (JSON tidak valid).",
    401: "Perlu masuk (login) terlebih dahulu.",
    403: "Akses ditolak.",
    404: "Alamat tidak ditemukan.",
    405: "Metode tidak diizinkan untuk alamat ini.",
    413: "Permintaan terlalu besar.",
    415: "Jenis konten tidak didukung.",
    422: "Data permintaan tidak valid.",
    429: "Terlalu banyak permintaan; coba lagi sebentar lagi.",
    503: "Layanan sedang sibuk; silakan coba lagi sebentar lagi.",
}


def error_body(status: int, code: str, detail: Any = None, message: str | None = None) -> dict[str, Any]:
    """The JSON error shape every route answers with."""
    body: dict[str, Any] = {
        "error": {"code": code, "message": message or MESSAGES_ID.get(status, "Terjadi kesalahan.")}
    }
    if detail is not None:
        body["error"]["detail"] = detail
    return body


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    cleaned = []
    for err in errors:
        cleaned.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return cleaned


STARTING_PAGE = """<!doctype html>
<html lang="id"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{seconds}"><title>Pontibot sedang bersiap</title>
<link rel="icon" href="/favicon.ico"><link rel="stylesheet" href="/static/chat.css"></head>
<body><main class="starting"><h1>Ponti sedang bersiap…</h1>
<p>Halaman ini terbuka sendiri dalam beberapa detik.</p>
<p lang="en">Starting up; this page opens by itself in a few seconds.</p></main></body></html>
"""


class Starting(StarletteHTTPException):
    """The server listens but its runtime is not ready yet (``GET /readyz`` says what it waits for)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            503,
            "Pontibot sedang bersiap; coba lagi sebentar lagi. / Starting up; try again shortly.",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes ``{"error": {...}}`` with a 4xx/503 status, never a bare 500."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            return JSONResponse(error_body(400, "invalid_json", errors), status_code=400)
        return JSONResponse(error_body(422, "invalid_request", errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, Starting):
            headers = {"Retry-After": str(exc.retry_after)}
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                page = STARTING_PAGE.format(seconds=exc.retry_after)
                return HTMLResponse(page, status_code=503, headers=headers)
            body = error_body(503, "starting", message=str(exc.detail))
            return JSONResponse(body, status_code=503, headers=headers)
        detail = exc.detail if not isinstance(exc.detail, str) else None
        message = exc.detail if isinstance(exc.detail, str) else None
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(exc.status_code, code, detail, message),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # A number the database cannot hold (an id past 2**63 in a path or query): the request is
        # invalid, not our failure. Found by fuzzing the OpenAPI document (tests/security/test_fuzz.py).
        logger.info("request with an out-of-range value refused: %s %s", request.method, request.url.path)
        return JSONResponse(error_body(422, "out_of_range"), status_code=422)

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return JSONResponse(error_body(503, "unavailable"), status_code=503, headers={"Retry-After": "5"})


class BodyLimitMiddleware:
    """Refuses request bodies above ``max_bytes`` with 413 before anything parses them."""

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._drain(receive)
            await self._reject(send)
            return
        received = 0
        too_big = False

        async def limited_receive() -> Message:
            nonlocal received, too_big
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_big = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._drain(receive)
            await self._reject(send)

    @staticmethod
    async def _drain(receive: Receive) -> None:
        """Read (and drop) the rest of a refused body, so the client gets our 413, not a reset."""
        drained = 0
        while drained < DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    @staticmethod
    async def _reject(send: Send) -> None:
        import json

        body = json.dumps(error_body(413, "too_large")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


DRAIN_LIMIT = 64 * 1024 * 1024


class _TooLarge(Exception):
    pass


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(self), geolocation=(self), microphone=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Our pages (web chat, staff console, booth) load scripts, styles and images from this origin only;
# photos previewed before upload are blob: URLs; charts are inline SVG. No external origin anywhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# FastAPI's own /docs and /redoc pages load Swagger UI / ReDoc from jsDelivr with an inline script;
# they get a policy that allows exactly that (and nothing else external).
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HSTS = b"max-age=31536000; includeSubDomains"


REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Gives every HTTP request an id (the caller's ``X-Request-ID`` when it is a plain token, else a
    new one), binds it to the request's log lines and echoes it in the response's ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"x-request-id"), "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex[:16]

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        with bind(request_id=request_id):
            await self.app(scope, receive, with_id)


class SecurityHeadersMiddleware:
    """Adds conservative security headers to every response: CSP, no sniffing or framing, and HSTS
    when the public URL is https (``hsts=True``)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_CONTENT_SECURITY_POLICY if scope.get("path") in DOCS_PATHS else CONTENT_SECURITY_POLICY
        extra = [*SECURITY_HEADERS, (b"content-security-policy", policy.encode())]
        if self.hsts:
            extra.append((b"strict-transport-security", HSTS))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class TrustedProxies:
    """The proxies (addresses, networks, or ``*``) whose forwarding headers name the client."""

    def __init__(self, spec: str) -> None:
        items = [part.strip() for part in spec.split(",") if part.strip()]
        self.everyone = "*" in items
        self.networks = [ipaddress.ip_network(item, strict=False) for item in items if item != "*"]

    def __contains__(self, host: object) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(str(host))
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client_of(self, forwarded_for: str) -> str | None:
        """The client in an ``X-Forwarded-For`` chain: the last hop that is not a trusted proxy.

        Each proxy appends the address it saw, so entries left of it may be forged by the client.
        """
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if hop not in self:
                return hop if _is_address(hop) else None
        return hops[0] if hops and _is_address(hops[0]) else None


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class ClientAddressMiddleware:
    """Sets the request's client to the real one when the peer is a trusted proxy (``server.
    forwarded_allow_ips``): from ``X-Forwarded-For``, else ``X-Real-IP``; ``X-Forwarded-Proto`` sets
    the scheme. From any other peer those headers are ignored. uvicorn's own proxy handling is off
    (``pontibot run``), so this is the one place that decides, and tests can exercise it."""

    def __init__(self, app: ASGIApp, *, trusted: str) -> None:
        self.app = app
        self.trusted = TrustedProxies(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and peer[0] in self.trusted:
                self._apply(scope)
        await self.app(scope, receive, send)

    def _apply(self, scope: Scope) -> None:
        headers: dict[bytes, list[str]] = {}
        for name, value in scope.get("headers") or []:
            if name in (b"x-forwarded-for", b"x-real-ip", b"x-forwarded-proto"):
                headers.setdefault(name, []).append(value.decode("latin-1"))
        client: str | None = None
        if b"x-forwarded-for" in headers:
            client = self.trusted.client_of(",".join(headers[b"x-forwarded-for"]))
        elif b"x-real-ip" in headers and _is_address(headers[b"x-real-ip"][-1].strip()):
            client = headers[b"x-real-ip"][-1].strip()
        if client is not None:
            scope["client"] = (client, 0)
        proto = headers.get(b"x-forwarded-proto", [""])[-1].strip().lower()
        if proto in ("http", "https"):
            scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")
