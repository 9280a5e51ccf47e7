"""A tiny threaded HTTP server for back-end fakes: routes, recorded requests, injected failures, stop/start.

The fakes speak real HTTP on 127.0.0.1, so the code under test uses its real httpx clients.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.server import free_port


@dataclass(frozen=True)
class Received:
    """One request the fake got."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    """What the fake sends back."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0
    declare_length: bool = True  # False: no Content-Length, the body ends when the connection closes

    @classmethod
    def json(cls, status: int, data: Any) -> Answer:
        return cls(status, json.dumps(data).encode())


Route = Callable[[Received], Answer]


@dataclass
class FakeServer:
    """Serves ``routes`` (method, path → handler) until stopped; start it again on the same port."""

    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    prefix_routes: list[tuple[str, str, Route]] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    _injected: list[Answer] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def fail_next(
        self,
        status: int = 503,
        body: bytes | str = b"",
        *,
        content_type: str = "text/plain",
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests with this instead of the route."""
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._injected.extend(Answer(status, raw, content_type, delay) for _ in range(times))

    def requests_to(self, method: str, path_end: str) -> list[Received]:
        """Recorded requests of ``method`` whose path ends with ``path_end``."""
        return [r for r in self.received if r.method == method and r.path.endswith(path_end)]

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                received = Received(
                    method, parts.path, query, form, {k.lower(): v for k, v in self.headers.items()}
                )
                with fake._lock:
                    fake.received.append(received)
                    injected = fake._injected.pop(0) if fake._injected else None
                answer = injected or fake._route(received)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    if answer.declare_length:
                        self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def _route(self, received: Received) -> Answer:
        route = self.routes.get((received.method, received.path))
        if route is None:
            for method, prefix, candidate in self.prefix_routes:
                if method == received.method and received.path.startswith(prefix):
                    route = candidate
                    break
        if route is None:
            return Answer.json(404, {"error": f"no route {received.method} {received.path}"})
        return route(received)
