"""Issue 16, finding 4: one client address cannot flood the web chat with new sessions or the
staff queue with urgent handoffs; behind nginx the real address counts, from trusted proxies only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from bot.staff.handoff_views import SUSPICIOUS_LABELS
from bot.wiring import build_runtime, close_runtime
from flows.handoff import EMERGENCY_STAFF_PAYLOAD
from storage.models import Resident
from storage.staff_models import Handoff
from tests.bot.staff.conftest import API_TOKEN
from tests.conftest import REPO
from tests.factories import chat_body
from tests.reliability.conftest import count

PROXY = "127.0.0.1"  # nginx on the same host: server.forwarded_allow_ips' default
STRANGER = "198.51.100.7"  # a peer that is not a trusted proxy


class FrozenClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def app_for(rt: Runtime) -> Any:
    """The app on ``rt`` (the lifespan is not run by the ASGI transport)."""
    app = create_app(rt.settings, runtime=rt)
    app.state.runtime = rt
    return app


def client_from(app: Any, peer: str) -> httpx.AsyncClient:
    """A client whose TCP peer address is ``peer``."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://bot", timeout=30)


@pytest.fixture
def frozen(runtime: Runtime) -> FrozenClock:
    """The address limits of ``runtime`` on a clock that stands still."""
    clock = FrozenClock()
    runtime.client_limits.clock = clock
    return clock


@pytest.fixture
async def tight(settings: Settings, nlu_parser: Any, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime whose addresses may open two new sessions (no refill while the test runs)."""
    tight_settings = load_settings(
        REPO / "config.yml",
        environ={"PONTIBOT_STAFF__API_TOKEN": API_TOKEN},
        database={"url": settings.database.url},
        nlu={"model_dir": str(settings.nlu.model_dir)},
        server={"media_dir": str(tmp_path / "media"), "address_new_sessions_burst": 2},
    )
    rt = await build_runtime(tight_settings, parser=nlu_parser)
    rt.client_limits.clock = FrozenClock()
    yield rt
    await close_runtime(rt)


async def statuses(client: httpx.AsyncClient, sessions: list[str], **headers: str) -> list[int]:
    """The status of one first message of each session, in order."""
    return [
        (await client.post("/api/chat", json=chat_body("halo", session_id=s), headers=headers)).status_code
        for s in sessions
    ]


async def test_sixty_new_sessions_from_one_address_are_limited_with_429_and_retry_after(
    runtime: Runtime, frozen: FrozenClock
) -> None:
    async with client_from(app_for(runtime), "203.0.113.5") as client:
        answers = [
            await client.post("/api/chat", json=chat_body("halo", session_id=f"flood-{i}")) for i in range(60)
        ]
        again = await client.post("/api/chat", json=chat_body("masih di sini", session_id="flood-0"))
        frozen.now += 2
        later = await client.post("/api/chat", json=chat_body("halo", session_id="flood-late"))

    assert [a.status_code for a in answers] == [200] * 30 + [429] * 30
    refused = answers[30]
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["error"]["code"] == "too_many_new_sessions"
    assert await count(runtime, Resident) == 31  # the refused ones stored nothing
    assert again.status_code == 200, "a session that exists is never limited"
    assert later.status_code == 200, "the budget refills (30 a minute)"


async def test_behind_the_trusted_proxy_each_forwarded_address_counts_on_its_own(tight: Runtime) -> None:
    async with client_from(app_for(tight), PROXY) as nginx:
        first = await statuses(nginx, ["a-1", "a-2", "a-3"], **{"X-Forwarded-For": "203.0.113.10"})
        # A client-supplied X-Forwarded-For is kept on the left; nginx appends the real address.
        spoofed = await statuses(nginx, ["b-1"], **{"X-Forwarded-For": "203.0.113.99, 203.0.113.10"})
        other = await statuses(nginx, ["c-1", "c-2"], **{"X-Forwarded-For": "203.0.113.11"})
        real_ip = await statuses(nginx, ["d-1", "d-2", "d-3"], **{"X-Real-IP": "203.0.113.12"})

    assert first == [200, 200, 429]
    assert spoofed == [429]
    assert other == [200, 200]
    assert real_ip == [200, 200, 429]


async def test_an_untrusted_peers_forwarded_headers_are_ignored(tight: Runtime) -> None:
    async with client_from(app_for(tight), STRANGER) as client:
        results = [
            await statuses(
                client, [f"s-{i}"], **{"X-Forwarded-For": f"203.0.113.{i}", "X-Real-IP": "10.9.9.9"}
            )
            for i in range(3)
        ]

    assert results == [[200], [200], [429]]


async def test_urgent_handoffs_beyond_three_from_one_address_are_not_urgent_and_marked_for_staff(
    runtime: Runtime, frozen: FrozenClock
) -> None:
    app = app_for(runtime)
    async with client_from(app, "203.0.113.20") as flooder, client_from(app, "203.0.113.21") as neighbour:
        for i in range(5):
            pressed = await flooder.post(
                "/api/chat", json=chat_body(None, session_id=f"sos-{i}", payload=EMERGENCY_STAFF_PAYLOAD)
            )
            assert pressed.status_code == 200
        real = await neighbour.post(
            "/api/chat", json=chat_body(None, session_id="sos-real", payload=EMERGENCY_STAFF_PAYLOAD)
        )
        assert real.status_code == 200
        queue = await flooder.get("/api/staff/handoffs", headers={"Authorization": f"Bearer {API_TOKEN}"})
        page = await flooder.get("/staff", headers={"Authorization": f"Bearer {API_TOKEN}"})

    async with runtime.db.session() as session:
        handoffs = (await session.execute(select(Handoff).order_by(Handoff.id))).scalars().all()
    assert [h.urgent for h in handoffs] == [True, True, True, False, False, True]
    assert [h.reason for h in handoffs] == ["emergency"] * 6
    listed = {h["id"]: h for h in queue.json()["handoffs"]}
    assert [listed[h.id]["suspicious"] for h in handoffs] == [False, False, False, True, True, False]
    # Urgent ones first: the marked two do not push the neighbour's emergency down the queue.
    assert [h["urgent"] for h in queue.json()["handoffs"]] == [True, True, True, True, False, False]
    assert page.text.count("⚠ Mencurigakan") == 2
    assert SUSPICIOUS_LABELS["urgent_flood"] in page.text


async def test_a_handoff_flood_from_one_address_is_marked_after_twenty(
    runtime: Runtime, frozen: FrozenClock
) -> None:
    async with client_from(app_for(runtime), "203.0.113.30") as client:
        for i in range(22):
            asked = await client.post(
                "/api/chat", json=chat_body(None, session_id=f"ask-{i}", payload="/talk_to_staff")
            )
            assert asked.status_code == 200
        frozen.now += 10 * 60
        after_window = await client.post(
            "/api/chat", json=chat_body(None, session_id="ask-later", payload="/talk_to_staff")
        )
        assert after_window.status_code == 200
        queue = await client.get("/api/staff/handoffs", headers={"Authorization": f"Bearer {API_TOKEN}"})

    marked = [h["suspicious"] for h in sorted(queue.json()["handoffs"], key=lambda h: h["id"])]
    assert marked == [False] * 20 + [True, True] + [False]
