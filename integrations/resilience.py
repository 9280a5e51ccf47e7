"""Resilient HTTP for back-end clients: timeouts, bounded jittered retries, a circuit breaker, capped reads.

What is retried: timeouts, connection errors and 5xx answers (the request may succeed a moment later).
Never retried: 4xx answers (the back end refused this request; asking again changes nothing).
After ``failure_threshold`` failed calls in a row the breaker opens and calls fail at once with
:class:`BackendUnavailable` until ``reset_after`` seconds pass; then one trial call decides (half-open).
Answers are read up to ``max_bytes``; a bigger one, an HTML page or invalid JSON is :class:`BadResponse`.
Each call is reported to an optional :data:`CallObserver` (the bot's metrics): outcome, time, breaker state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from integrations.base import BackendUnavailable, BadResponse

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class CallOutcome(StrEnum):
    """How one call to a back end ended."""

    OK = "ok"  # a 2xx or 3xx answer
    REJECTED = "rejected"  # a 4xx answer: the back end refused this request
    ERROR = "error"  # unreachable, 5xx on every attempt, or an answer we cannot read
    CIRCUIT_OPEN = "circuit_open"  # not tried: the breaker is open


class CircuitState(StrEnum):
    """Whether calls go through (closed), fail fast (open) or one trial is allowed (half-open)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts failed calls in a row; opens after ``failure_threshold``, tries again after ``reset_after``."""

    def __init__(
        self, *, failure_threshold: int = 5, reset_after: float = 30.0, clock: Clock = time.monotonic
    ):
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> CircuitState:
        """The state now (an open breaker turns half-open once ``reset_after`` has passed)."""
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self.reset_after:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allow(self) -> bool:
        """True when a call may go out now (in half-open: only the one trial call)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        """A call worked: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def release_trial(self) -> None:
        """The trial call was abandoned (cancelled) without a verdict: let another one try."""
        self._trial_running = False

    def record_failure(self) -> None:
        """A call failed: open the breaker after enough failures, or again after a failed trial."""
        self._failures += 1
        if self._trial_running or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._trial_running = False

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_after - (self._clock() - self._opened_at))


CallObserver = Callable[[str, CallOutcome, float, CircuitState], None]
"""Told of every call: back end name, outcome, seconds (retries included), the breaker's state after it."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` tries; before try n+1 wait a random time up to ``base_delay * 2**n`` (capped)."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """The jittered wait before retry number ``retry`` (0-based): "full jitter" backoff."""
        cap = min(self.max_delay, self.base_delay * (2**retry))
        return rng.uniform(cap / 2, cap)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A back end's answer: status, content type and the body (at most ``max_bytes``)."""

    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", errors="replace")


class _Transient(Exception):
    """One attempt failed in a way worth retrying."""


class ResilientClient:
    """An httpx client for one back end with timeouts, retries, a circuit breaker and capped reads."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        max_bytes: int = 2_000_000,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.name = name
        self.observer = observer
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self.max_bytes = max_bytes
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout),
            headers=dict(headers or {}),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> HttpAnswer:
        """Send one request with retries; 2xx-4xx answers are returned, the rest raise.

        Raises:
            BackendUnavailable: timeouts, connection errors or 5xx on every attempt, or the breaker is open.
            BadResponse: the body is bigger than ``max_bytes``.
        """
        started = time.monotonic()
        if not self.breaker.allow():
            self._observe(CallOutcome.CIRCUIT_OPEN, started)
            raise BackendUnavailable(
                f"{self.name} is unavailable (circuit open after repeated failures; "
                f"next try in {self.breaker.retry_in():.0f}s)",
                backend=self.name,
            )
        try:
            answer = await self._with_retries(method, path, params=params, data=data)
        except asyncio.CancelledError:
            self.breaker.release_trial()
            raise
        except (BackendUnavailable, BadResponse):
            self._observe(CallOutcome.ERROR, started)
            raise
        self._observe(CallOutcome.REJECTED if 400 <= answer.status < 500 else CallOutcome.OK, started)
        return answer

    def _observe(self, outcome: CallOutcome, started: float) -> None:
        if self.observer is not None:
            self.observer(self.name, outcome, time.monotonic() - started, self.breaker.state)

    async def _with_retries(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
    ) -> HttpAnswer:
        last_error = ""
        for attempt in range(self.retry.attempts):
            if attempt:
                await self._sleep(self.retry.delay(attempt - 1, self._rng))
            try:
                answer = await self._attempt(method, path, params=params, data=data)
            except _Transient as exc:
                last_error = str(exc)
                logger.warning(
                    "%s %s %s failed (attempt %d/%d): %s",
                    self.name,
                    method,
                    path,
                    attempt + 1,
                    self.retry.attempts,
                    last_error,
                )
                continue
            except BadResponse:
                self.breaker.record_failure()
                raise
            self.breaker.record_success()
            return answer
        self.breaker.record_failure()
        raise BackendUnavailable(
            f"{self.name} is unavailable: {method} {path} failed {self.retry.attempts} times ({last_error})",
            backend=self.name,
        )

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """Like :meth:`request`, then the body parsed as JSON (None for an empty body).

        Raises:
            BadResponse: an HTML page, invalid JSON, or a body too big.
        """
        answer = await self.request(method, path, params=params, data=data)
        try:
            return answer.status, parse_json(answer, backend=self.name)
        except BadResponse:
            if answer.ok:
                self.breaker.record_failure()
            raise

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
    ) -> HttpAnswer:
        try:
            request = self._client.build_request(method, path.lstrip("/"), params=params, data=data)
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise _Transient(f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Transient(f"connection failed ({type(exc).__name__}: {exc})") from exc
        try:
            if response.status_code >= 500:
                raise _Transient(f"HTTP {response.status_code}")
            body = await self._read_capped(response)
        except httpx.TimeoutException as exc:
            raise _Transient(f"timed out reading the answer ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Transient(f"connection broke while reading ({type(exc).__name__})") from exc
        finally:
            await response.aclose()
        return HttpAnswer(
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            body=body,
            headers=dict(response.headers),
        )

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise BadResponse(
                f"{self.name} answered {declared} bytes, more than the {self.max_bytes} bytes we accept",
                backend=self.name,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise BadResponse(
                    f"{self.name} answered more than the {self.max_bytes} bytes we accept",
                    backend=self.name,
                )
            chunks.append(chunk)
        return b"".join(chunks)


def parse_json(answer: HttpAnswer, *, backend: str) -> Any:
    """The answer's JSON body; an HTML page or anything not JSON is :class:`BadResponse`."""
    if not answer.body.strip():
        return None
    head = answer.body.lstrip()[:64].lower()
    if "html" in answer.content_type or head.startswith((b"<!doctype", b"<html", b"<")):
        raise BadResponse(
            f"{backend} answered an HTML page (HTTP {answer.status}) where JSON was expected",
            backend=backend,
        )
    try:
        return json.loads(answer.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadResponse(
            f"{backend} answered invalid JSON (HTTP {answer.status}): {exc}", backend=backend
        ) from None
