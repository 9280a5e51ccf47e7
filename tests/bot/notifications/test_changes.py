"""Change detection: back-end changes become outbox rows in the transaction that stores the cursor."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.notifications.changes import ChangeDetector, change_key, complaint_notice, permit_notice
from flows.texts import Texts
from integrations.base import ComplaintReport, PermitStage, reporter_ref
from storage import outbox as outbox_repo
from storage import repositories as repo
from storage.models import OutboxMessage, Subscription
from tests.bot.notifications.conftest import TEXTS, Bench

PERMIT = "PBG-2026-00124"  # seeded at "diterima"


def detector(bench: Bench, texts: Texts = TEXTS) -> ChangeDetector:
    backends = bench.rt.backends
    return ChangeDetector(
        db=bench.rt.db, texts=texts, permits=backends.permits, complaints=backends.complaint_backend
    )


async def subscribe(
    bench: Bench, chat_id: str, ref: str, *, language: str = "id", topic: str = "permit"
) -> int:
    resident = await bench.resident(chat_id, language=language)
    backend = bench.rt.backends.permits
    status = (await backend.get(ref)).stage.value if topic == "permit" else "open"  # type: ignore[union-attr]
    async with bench.rt.db.session() as session:
        await repo.subscribe(session, resident_id=resident.id, topic=topic, ref=ref, last_status=status)
    return resident.id


async def outbox(bench: Bench) -> list[OutboxMessage]:
    async with bench.rt.db.session() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def test_a_stage_change_queues_one_message_per_subscriber_in_their_language(bench: Bench) -> None:
    rina = await subscribe(bench, "1001", PERMIT)
    john = await subscribe(bench, "1002", PERMIT, language="en")
    await subscribe(bench, "1003", "PBG-2026-00123")
    watcher = detector(bench)
    start = await watcher.poll_permits()  # first poll: starts from now

    moved = await bench.rt.backends.demo_permits.advance(PERMIT)  # type: ignore[union-attr]
    result = await watcher.poll_permits()
    again = await watcher.poll_permits()

    rows = await outbox(bench)
    stage = PermitStage.DOCUMENT_CHECK.value
    assert (start.queued, result.changes, result.queued, again.queued) == (0, 1, 2, 0)
    assert [(r.chat_id, r.kind, r.idempotency_key) for r in rows] == [
        ("1001", "notification", change_key("permit", PERMIT, stage, rina)),
        ("1002", "notification", change_key("permit", PERMIT, stage, john)),
    ]
    assert rows[0].body["text"] == permit_notice(TEXTS, "id", moved).reply.text  # type: ignore[union-attr]
    assert rows[1].body["text"] == permit_notice(TEXTS, "en", moved).reply.text  # type: ignore[union-attr]
    assert rows[0].body["text"].startswith("🔔 Berkas PBG PBG-2026-00124 sedang diperiksa")
    assert rows[0].body["buttons"] == [
        {
            "title": TEXTS.render("id", "notify.button_details"),
            "payload": '/permit_status{"permit_number": "PBG-2026-00124"}',
        }
    ]
    assert (rows[0].body["template"], rows[0].body["variables"]) == (
        "permit_update",
        {"1": PERMIT, "2": "verifikasi berkas"},
    )
    async with bench.rt.db.session() as session:
        statuses = {
            s.resident_id: s.last_status for s in await repo.subscribers(session, topic="permit", ref=PERMIT)
        }
        cursor = await outbox_repo.get_cursor(session, source="permits")
    assert statuses == {rina: stage, john: stage}
    assert cursor is not None and cursor.cursor == result.cursor and cursor.changes == 1


async def test_the_payment_stage_says_where_to_pay(bench: Bench) -> None:
    await subscribe(bench, "1001", PERMIT)
    watcher = detector(bench)
    await watcher.poll_permits()

    await bench.rt.backends.demo_permits.advance(PERMIT, PermitStage.AWAITING_PAYMENT)  # type: ignore[union-attr]
    await watcher.poll_permits()

    [row] = await outbox(bench)
    assert "Silakan bayar retribusi di bank yang ditunjuk" in row.body["text"]
    assert row.body["text"].endswith(TEXTS.render("id", "notify.stop_hint"))


class BrokenTexts(Texts):
    """Texts that fail while rendering (a bug mid-transaction)."""

    def render(self, lang: str, key: str, *, seed: int = 0, **params: Any) -> str:
        raise RuntimeError("rendering failed")


async def test_a_failure_while_queueing_stores_neither_rows_nor_the_cursor(bench: Bench) -> None:
    await subscribe(bench, "1001", PERMIT)
    await detector(bench).poll_permits()
    async with bench.rt.db.session() as session:
        before = (await outbox_repo.get_cursor(session, source="permits")).cursor  # type: ignore[union-attr]
    await bench.rt.backends.demo_permits.advance(PERMIT)  # type: ignore[union-attr]

    with pytest.raises(RuntimeError):
        await detector(bench, BrokenTexts({})).poll_permits()
    async with bench.rt.db.session() as session:
        after = (await outbox_repo.get_cursor(session, source="permits")).cursor  # type: ignore[union-attr]
        last = (await session.execute(select(Subscription.last_status))).scalar_one()
    queued_meanwhile = await outbox(bench)
    retried = await detector(bench).poll_permits()

    assert (after, last, queued_meanwhile) == (before, "diterima", [])
    assert retried.queued == 1 and len(await outbox(bench)) == 1


async def test_the_first_poll_finds_what_moved_before_it(bench: Bench) -> None:
    await subscribe(bench, "1001", PERMIT)
    await bench.rt.backends.demo_permits.advance(PERMIT)  # type: ignore[union-attr]

    first = await detector(bench).poll_permits()

    assert first.queued == 1
    assert [r.body["status"] for r in await outbox(bench)] == ["verifikasi_berkas"]


async def test_opted_out_residents_get_no_row(bench: Bench) -> None:
    resident_id = await subscribe(bench, "1001", PERMIT)
    watcher = detector(bench)
    await watcher.poll_permits()
    async with bench.rt.db.session() as session:
        await repo.subscribe(session, resident_id=resident_id, topic="announcements", ref="*")
        await repo.unsubscribe(session, resident_id=resident_id)  # BERHENTI: everything, and opted out

    await bench.rt.backends.demo_permits.advance(PERMIT)  # type: ignore[union-attr]
    result = await watcher.poll_permits()

    assert (result.changes, result.queued, await outbox(bench)) == (1, 0, [])


async def test_a_complaint_status_change_notifies_its_subscriber(bench: Bench) -> None:
    resident = await bench.resident("1001")
    desk = bench.rt.backends.complaints
    filing = await desk.file(
        ComplaintReport(
            category="road_damage",
            description="Jalan berlubang besar di depan sekolah",
            reporter=reporter_ref(resident.id),
            local_ref="REF-TEST0001",
        )
    )
    assert filing.ticket is not None
    async with bench.rt.db.session() as session:
        await repo.subscribe(
            session, resident_id=resident.id, topic="complaint", ref=filing.ticket, last_status="open"
        )
    watcher = detector(bench)
    await watcher.poll_complaints()
    local = bench.rt.backends.local_complaints
    assert local is not None

    await local.transition(filing.ticket, "verified", note="Sudah dicek petugas", actor="staff:ani")
    forwarded = await local.transition(filing.ticket, "forwarded", note="Ke PUPR", actor="staff:ani")
    result = await watcher.poll_complaints()

    [row] = await outbox(bench)
    assert result.queued == 1  # one poll sees the latest status only
    assert row.body["text"] == complaint_notice(TEXTS, "id", forwarded).reply.text
    assert forwarded.agency is not None and forwarded.agency in row.body["text"]
    assert row.idempotency_key == change_key("complaint", filing.ticket, "forwarded", resident.id)
