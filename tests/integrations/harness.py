"""Each back-end implementation with what a test needs beside it (the system side, to make changes)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from integrations.base import ComplaintBackend, PermitBackend
from integrations.demo_permits import DemoPermitBackend
from integrations.http_permits import HttpPermitBackend
from integrations.local_complaints import LocalComplaintBackend
from integrations.open311 import Open311Client, Open311ComplaintBackend
from integrations.resilience import CircuitBreaker, ResilientClient, RetryPolicy
from storage.db import Database
from tests.support.fake_open311 import API_KEY, SERVICE_CODES, FakeOpen311
from tests.support.fake_permits import FakePermitSystem, config_for

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.005)


async def _no_sleep(_: float) -> None:
    return None


def fast_client(name: str, base_url: str, **kwargs: object) -> ResilientClient:
    """A resilient client that retries without waiting (deterministic jitter)."""
    return ResilientClient(
        name=name,
        base_url=base_url,
        timeout=float(kwargs.pop("timeout", 2.0)),  # type: ignore[arg-type]
        retry=FAST_RETRY,
        breaker=kwargs.pop("breaker", None) or CircuitBreaker(failure_threshold=50),  # type: ignore[arg-type]
        sleep=_no_sleep,
        rng=random.Random(7),
        **kwargs,  # type: ignore[arg-type]
    )


@dataclass
class PermitHarness:
    """A permit back end, a number it knows, and a way to move that permit on the system's side."""

    kind: str
    backend: PermitBackend
    known: str
    advance: Callable[[str], Awaitable[None]]


@dataclass
class ComplaintHarness:
    """A complaint back end and a way to change a complaint's status on the system's side."""

    kind: str
    backend: ComplaintBackend
    change: Callable[[str], Awaitable[None]]
    fake: FakeOpen311 | None = None


async def permit_harness(kind: str, db: Database) -> AsyncIterator[PermitHarness]:
    if kind == "demo":
        demo = DemoPermitBackend(db)
        await demo.seed()

        async def advance_demo(number: str) -> None:
            await demo.advance(number)

        yield PermitHarness("demo", demo, "PBG-2026-00123", advance_demo)
        return
    system = FakePermitSystem().start()
    system.add("PBG-2026-00123", "PBG", "SURVEI", note="Survei dijadwalkan")
    config = config_for(system)
    http = HttpPermitBackend(
        config,
        client=fast_client("http-permits", config.base_url, headers={"X-Api-Key": "perizinan-test-key"}),
    )

    async def advance_http(number: str) -> None:
        system.advance(number)

    try:
        yield PermitHarness("http", http, "PBG-2026-00123", advance_http)
    finally:
        await http.aclose()
        system.stop()


def open311_backend(fake: FakeOpen311, **kwargs: object) -> Open311ComplaintBackend:
    client = Open311Client(
        base_url=fake.url,
        api_key=API_KEY,
        jurisdiction_id=fake.jurisdiction_id,
        client=fast_client("open311", fake.url, breaker=kwargs.pop("breaker", None)),
    )
    return Open311ComplaintBackend(client, service_codes=SERVICE_CODES, sleep=_no_sleep, **kwargs)  # type: ignore[arg-type]


async def complaint_harness(kind: str, db: Database) -> AsyncIterator[ComplaintHarness]:
    if kind == "local":
        local = LocalComplaintBackend(db)

        async def verify(ticket: str) -> None:
            await local.transition(ticket, "verified", note="Sudah dicek petugas", actor="staff:ana")

        yield ComplaintHarness("local", local, verify)
        return
    fake = FakeOpen311(jurisdiction_id="pontianak.go.id").start()
    backend = open311_backend(fake)

    async def close(ticket: str) -> None:
        # W3C times have whole seconds: the change lands clearly after any cursor taken before it.
        fake.set_status(ticket, "closed", "Sudah diperbaiki", at=datetime.now(UTC) + timedelta(seconds=2))

    try:
        yield ComplaintHarness("open311", backend, close, fake)
    finally:
        await backend.aclose()
        fake.stop()
