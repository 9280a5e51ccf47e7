"""Acceptance: the Open311 server goes away mid-run; a complaint is kept and reaches it exactly once later.

The bot runs for real (uvicorn, web chat API) against a fake Open311 server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.notifications.jobs import ticket_key, ticket_notifier
from bot.settings import Settings
from bot.wiring.backends import build_backends
from flows.texts import Texts
from integrations.base import ComplaintReport, ComplaintStatus, reporter_ref
from storage import repositories as repo
from storage.backend_models import ComplaintRecord
from storage.db import Database
from storage.models import OutboxMessage
from tests import factories
from tests.conftest import LiveServer
from tests.factories import chat_body
from tests.support.fake_http import Received
from tests.support.fake_open311 import API_KEY, SERVICE_CODES, FakeOpen311

TEXTS = Texts.load()
DESCRIPTION = "Jalan berlubang besar di depan SD Negeri 14, motor sering jatuh"


@pytest.fixture
def open311() -> Iterator[FakeOpen311]:
    fake = FakeOpen311().start()
    yield fake
    fake.stop()


@pytest.fixture
def settings_overrides(open311: FakeOpen311) -> dict[str, Any]:
    """The repository's config with complaints going to the fake Open311 server."""
    return dict(
        complaints={
            "backend": "open311",
            "open311": {
                "base_url": open311.url,
                "api_key": API_KEY,
                "service_codes": SERVICE_CODES,
                "timeout": 2,
            },
        },
    )


def later(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


async def resident_of(server: LiveServer, session_id: str) -> int:
    async with server.runtime.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id=session_id)
        assert conversation is not None
        return conversation.resident_id


def report_for(resident_id: int) -> ComplaintReport:
    return factories.report(description=DESCRIPTION, resident_id=resident_id)


async def test_a_complaint_filed_during_an_outage_is_submitted_once_and_the_resident_gets_the_ticket(
    live_server: LiveServer, open311: FakeOpen311, settings: Settings
) -> None:
    client = live_server.client
    assert (await client.post("/api/chat", json=chat_body("halo", session_id="warga-1"))).status_code == 200
    resident_id = await resident_of(live_server, "warga-1")

    # The Open311 server goes away; the resident files a complaint anyway.
    open311.stop()
    filing = await live_server.runtime.backends.complaints.file(report_for(resident_id))
    told = TEXTS.render("id", "backend.complaint_pending", ref=filing.local_ref)

    assert (filing.pending, filing.ticket, await live_server.runtime.backends.complaints.pending_count()) == (
        True,
        None,
        1,
    )
    assert filing.complaint is not None and filing.complaint.status is ComplaintStatus.PENDING
    assert filing.local_ref in told and "otomatis" in told

    # It comes back. The running desk waits for its backoff before trying again.
    open311.start()
    early = await live_server.runtime.backends.complaints.submit_pending(on_ticket=ticket_notifier(TEXTS))
    assert (early, open311.requests_to("POST", "requests.json")) == ([], [])

    # The bot restarts: new Database and desk objects on the same database, an hour later.
    db = Database(settings.database_url)
    backends = build_backends(settings, db, clock=lambda: later(1))
    try:
        submitted = await backends.complaints.submit_pending(on_ticket=ticket_notifier(TEXTS))
        again = await backends.complaints.submit_pending(on_ticket=ticket_notifier(TEXTS))
        found = await backends.complaints.get(filing.local_ref)
        mine = await backends.complaints.for_reporter(reporter_ref(resident_id))
    finally:
        await backends.aclose()
        await db.dispose()

    posts = open311.requests_to("POST", "requests.json")
    [done] = submitted
    assert (len(posts), posts[0].form["description"], again) == (1, DESCRIPTION, [])
    assert (done.local_ref, done.ticket, done.pending) == (filing.local_ref, "1001", False)
    assert found is not None and (found.ticket, found.status) == ("1001", ComplaintStatus.OPEN)
    assert [c.ticket for c in mine] == ["1001"]

    text = TEXTS.render("id", "backend.ticket_assigned", ticket="1001", ref=filing.local_ref)
    async with live_server.runtime.db.session() as session:
        outbox = (await session.execute(select(OutboxMessage))).scalars().all()
        row = (await session.execute(select(ComplaintRecord))).scalar_one()
    assert [(o.kind, o.idempotency_key, o.body["text"]) for o in outbox] == [
        ("notification", ticket_key(filing.local_ref), text)
    ]
    assert (row.ticket, row.status, row.backend_token, row.claimed_until) == ("1001", "open", None, None)

    events = (await client.get("/api/chat/warga-1/events", params={"after": 0})).json()["events"]
    assert [(e["kind"], e["text"]) for e in events] == [("push", text)]


async def test_two_job_runners_at_once_submit_a_pending_complaint_once(
    database_url: str, open311: FakeOpen311, settings: Settings
) -> None:
    open311.stop()
    db = Database(database_url)
    first = build_backends(settings, db)
    filing = await first.complaints.file(report_for(1))
    open311.start()
    create = open311.server.routes[("POST", "/open311/v2/requests.json")]

    def slow_create(received: Received) -> object:
        time.sleep(0.2)  # both runners are inside submit_pending while the server thinks
        return create(received)

    open311.server.routes[("POST", "/open311/v2/requests.json")] = slow_create  # type: ignore[assignment]
    other_db = Database(database_url)
    runners = [
        build_backends(settings, db, clock=lambda: later(1)),
        build_backends(settings, other_db, clock=lambda: later(1)),
    ]
    try:
        results = await asyncio.gather(*(r.complaints.submit_pending() for r in runners))
    finally:
        for backends in (first, *runners):
            await backends.aclose()
        await db.dispose()
        await other_db.dispose()

    assert sorted(len(r) for r in results) == [0, 1]
    assert [f.local_ref for r in results for f in r] == [filing.local_ref]
    assert len(open311.requests_to("POST", "requests.json")) == 1


async def test_a_token_answer_is_resolved_by_the_job_without_posting_again(
    database_url: str, open311: FakeOpen311, settings: Settings
) -> None:
    open311.batch, open311.token_delay_polls = True, 10
    db = Database(database_url)
    backends = build_backends(settings, db)
    try:
        filing = await backends.complaints.file(report_for(1))
        open311.token_delay_polls = 0
        later_backends = build_backends(settings, db, clock=lambda: later(1))
        done = await later_backends.complaints.submit_pending()
        await later_backends.aclose()
    finally:
        await backends.aclose()
        await db.dispose()

    assert (filing.pending, [f.ticket for f in done]) == (True, ["1001"])
    assert len(open311.requests_to("POST", "requests.json")) == 1
