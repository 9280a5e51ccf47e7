"""Timeouts, retries on 5xx only, the circuit breaker and capped reads, against a real local HTTP server."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from integrations.base import BackendUnavailable, BadResponse
from integrations.resilience import CircuitBreaker, CircuitState, ResilientClient, RetryPolicy
from tests.support.fake_http import Answer, FakeServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    fake.routes[("GET", "/ok")] = lambda _: Answer.json(200, {"ok": True})
    fake.routes[("GET", "/bad-request")] = lambda _: Answer.json(400, {"error": "nomor tidak valid"})
    fake.routes[("GET", "/slow")] = lambda _: Answer(200, b"{}", delay=0.3)
    fake.start()
    yield fake
    fake.stop()


def client(server: FakeServer, **kwargs: object) -> tuple[ResilientClient, Sleeps]:
    sleeps = Sleeps()
    options: dict[str, object] = {
        "name": "test-backend",
        "base_url": server.base,
        "timeout": 1.0,
        "retry": RetryPolicy(attempts=3, base_delay=0.1, max_delay=0.3),
        "sleep": sleeps,
        "rng": random.Random(1),
    }
    options.update(kwargs)
    return ResilientClient(**options), sleeps  # type: ignore[arg-type]


async def test_a_5xx_is_retried_with_growing_jittered_waits_until_it_works(server: FakeServer) -> None:
    http, sleeps = client(server)
    server.fail_next(503, times=2)

    status, data = await http.request_json("GET", "/ok")
    await http.aclose()

    assert (status, data, len(server.received)) == (200, {"ok": True}, 3)
    assert 0.05 <= sleeps.delays[0] <= 0.1 and 0.1 <= sleeps.delays[1] <= 0.2


async def test_a_4xx_is_returned_at_once_and_never_retried(server: FakeServer) -> None:
    http, sleeps = client(server)

    status, data = await http.request_json("GET", "/bad-request")
    await http.aclose()

    assert (status, data, len(server.received), sleeps.delays) == (400, {"error": "nomor tidak valid"}, 1, [])


async def test_persistent_5xx_becomes_unavailable_after_the_bounded_attempts(server: FakeServer) -> None:
    http, _ = client(server)
    server.fail_next(502, "<html>Bad Gateway</html>", content_type="text/html", times=5)

    with pytest.raises(
        BackendUnavailable, match=r"test-backend is unavailable: GET /ok failed 3 times \(HTTP 502\)"
    ):
        await http.request("GET", "/ok")
    await http.aclose()

    assert len(server.received) == 3


async def test_a_timeout_is_retried_then_reported(server: FakeServer) -> None:
    http, _ = client(server, timeout=0.05)

    with pytest.raises(BackendUnavailable, match="timed out"):
        await http.request("GET", "/slow")
    await http.aclose()

    assert len(server.received) == 3


async def test_a_server_that_is_gone_is_unavailable() -> None:
    gone = FakeServer()  # never started: connection refused
    http, _ = client(gone)

    with pytest.raises(BackendUnavailable, match="connection failed"):
        await http.request("GET", "/ok")
    await http.aclose()


async def test_the_breaker_opens_fails_fast_then_lets_one_trial_through(server: FakeServer) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_after=30, clock=clock)
    http, _ = client(server, breaker=breaker, retry=RetryPolicy(attempts=1))
    server.fail_next(503, times=2)
    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            await http.request("GET", "/ok")
    assert breaker.state is CircuitState.OPEN

    with pytest.raises(BackendUnavailable, match="circuit open"):
        await http.request("GET", "/ok")
    assert len(server.received) == 2  # failed fast: nothing sent

    clock.now += 30
    assert breaker.state is CircuitState.HALF_OPEN
    status, _ = await http.request_json("GET", "/ok")
    await http.aclose()

    assert (status, breaker.state, len(server.received)) == (200, CircuitState.CLOSED, 3)


def test_a_failed_trial_opens_the_breaker_again() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=10, clock=clock)
    breaker.record_failure()
    clock.now += 10

    assert (breaker.allow(), breaker.allow()) == (True, False)  # one trial at a time
    breaker.record_failure()

    assert (breaker.state, breaker.retry_in()) == (CircuitState.OPEN, 10.0)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (Answer(200, b"<!DOCTYPE html><title>Maintenance</title>", "text/html"), "answered an HTML page"),
        (Answer(200, b'{"items": [1, 2', "application/json"), "answered invalid JSON"),
        (Answer(200, b"\xff\xfe\x00garbage", "application/json"), "answered invalid JSON"),
        (Answer(200, b"x" * 3_000_000, "application/json"), "more than the 1000000 bytes"),
        (Answer(200, b"[" + b"1," * 1_500_000, declare_length=False), "more than the 1000000 bytes"),
    ],
)
async def test_malformed_answers_are_bad_responses_with_clear_messages(
    server: FakeServer, answer: Answer, message: str
) -> None:
    server.routes[("GET", "/weird")] = lambda _: answer
    http, _ = client(server, max_bytes=1_000_000)

    with pytest.raises(BadResponse, match=message):
        await http.request_json("GET", "/weird")
    await http.aclose()

    assert len(server.received) == 1
