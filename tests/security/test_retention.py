"""Retention: transcripts, dedupe records, finished outbox rows and photos older than the period go;
complaints keep the case with NIK/phones masked; the job runs with the runtime."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.notifications.retention import purge_expired
from bot.runtime import Runtime
from bot.wiring import start_runtime
from bot.wiring.lifecycle import retention_run
from integrations.base import reporter_ref
from storage import repositories as repo
from storage.backend_models import ComplaintEvent, ComplaintRecord
from storage.models import Conversation, Message, OutboxMessage, ProcessedMessage
from storage.staff_models import Handoff
from tests import factories
from tests.support import eventually

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=181)
RECENT = NOW - timedelta(days=179)
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(200))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(100))
GIF = b"GIF89a" + bytes(range(50))


def _age(path: os.PathLike[str], when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


async def test_purge_removes_what_is_older_than_the_period_and_keeps_the_case(runtime: Runtime) -> None:
    media = runtime.media
    old_photo = media.save(JPEG)  # sent 181 days ago, only in the old transcript
    kept_photo = media.save(PNG)  # evidence of an open complaint
    orphan = media.save(GIF)  # nobody refers to it (an erased resident's)
    for key, when in ((old_photo.key, OLD), (kept_photo.key, OLD), (orphan.key, NOW - timedelta(hours=2))):
        _age(media.root / key, when)
    async with runtime.db.session() as session:
        resident = await factories.resident(session, "w-1")
        conversation = await factories.conversation(session, "w-1")
        conversation.slots = {"complaint.description": "NIK 6171015508900003"}
        conversation.updated_at = OLD
        await repo.add_message(
            session,
            conversation_id=conversation.id,
            direction="in",
            kind="message",
            text="foto jalan, NIK 6171015508900003",
            data={"kind": "photo", "media": [{"key": old_photo.key, "content_type": "image/jpeg"}]},
            created_at=OLD,
        )
        await repo.add_message(
            session,
            conversation_id=conversation.id,
            direction="in",
            kind="message",
            text="baru",
            created_at=RECENT,
        )
        await repo.claim_platform_message(session, channel="webchat", chat_id="w-1", message_id="old-1")
        await repo.claim_platform_message(session, channel="webchat", chat_id="w-1", message_id="new-1")
        for mid, when in (("old-1", OLD), ("new-1", RECENT)):
            processed = await repo.get_processed_message(
                session, channel="webchat", chat_id="w-1", message_id=mid
            )
            assert processed is not None
            processed.created_at = when
        for key, status in (("sent-old", "sent"), ("pending-old", "pending")):
            await repo.enqueue_outbox(
                session, resident=resident, kind="notification", body={"t": 1}, idempotency_key=key
            )
        await session.flush()
        for row in (await session.execute(select(OutboxMessage))).scalars():
            row.created_at = OLD
            row.status = "sent" if row.idempotency_key == "sent-old" else "pending"
        closed = ComplaintRecord(
            local_ref="L-1",
            ticket="ADU-2026-000001",
            backend="local",
            category="drainage_flood",
            description="banjir, hubungi 081234567890",
            reporter=reporter_ref(resident.id),
            status="resolved",
            lat=-0.02,
            lon=109.34,
            updated_at=OLD,
        )
        still_open = ComplaintRecord(
            local_ref="L-2",
            ticket="ADU-2026-000002",
            backend="local",
            category="road_damage",
            description="lubang, hp 081234567890",
            reporter=reporter_ref(resident.id),
            status="open",
            media_keys=[kept_photo.key],
            updated_at=OLD,
        )
        session.add_all([closed, still_open])
        await session.flush()
        session.add(
            ComplaintEvent(
                complaint_id=closed.id,
                from_status="open",
                to_status="resolved",
                note="warga 081234567890",
                actor="x",
            )
        )
        session.add(
            Handoff(
                conversation_id=conversation.id,
                reason="requested",
                context={"slots": {"nik": "6171015508900003"}},
                opened_at=OLD,
                closed_at=OLD,
                close_note="NIK 6171015508900003 sudah dibantu",
            )
        )

    purge = await purge_expired(runtime.db, media, retention_days=180, now=NOW)

    assert (purge.messages, purge.processed, purge.outbox, purge.complaints, purge.handoffs, purge.media) == (
        1,
        1,
        1,
        1,
        1,
        2,
    )
    async with runtime.db.session() as session:
        assert (await session.execute(select(Message.text))).scalars().all() == ["baru"]
        assert (await session.execute(select(ProcessedMessage.message_id))).scalars().all() == ["new-1"]
        assert (await session.execute(select(OutboxMessage.idempotency_key))).scalars().all() == [
            "pending-old"
        ]
        conversation = (await session.execute(select(Conversation))).scalar_one()
        assert (conversation.state, conversation.slots) == (None, {})
        rows = {c.local_ref: c for c in (await session.execute(select(ComplaintRecord))).scalars()}
        assert rows["L-1"].description == "banjir, hubungi 0812****7890"
        assert (rows["L-1"].ticket, rows["L-1"].category, rows["L-1"].lat, rows["L-1"].reporter) == (
            "ADU-2026-000001",
            "drainage_flood",
            -0.02,
            None,
        )
        assert rows["L-2"].description == "lubang, hp 081234567890"  # open: the case still needs it
        event = (await session.execute(select(ComplaintEvent))).scalar_one()
        assert (event.to_status, event.note) == ("resolved", "warga 0812****7890")
        handoff = (await session.execute(select(Handoff))).scalar_one()
        assert (handoff.context, handoff.close_note) == ({}, "NIK 6171********0003 sudah dibantu")
    assert not (media.root / old_photo.key).exists()
    assert (media.root / kept_photo.key).exists()
    assert not (media.root / orphan.key).exists()

    again = await purge_expired(runtime.db, media, retention_days=180, now=NOW)
    assert (again.messages, again.complaints, again.media) == (0, 0, 0)


async def test_a_photo_just_saved_is_not_an_orphan_yet(runtime: Runtime) -> None:
    photo = runtime.media.save(JPEG)
    purge = await purge_expired(runtime.db, runtime.media, retention_days=180)
    assert purge.media == 0
    assert (runtime.media.root / photo.key).exists()


async def test_the_retention_job_runs_with_the_runtime(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        conversation = await factories.conversation(session, "w-2")
        await repo.add_message(
            session,
            conversation_id=conversation.id,
            direction="in",
            kind="message",
            text="lama",
            created_at=OLD,
        )
    runtime.dispatcher.clock = lambda: NOW
    await start_runtime(runtime)
    try:
        assert "retention" in {task.get_name() for task in runtime.background}

        async def messages_gone() -> bool:
            async with runtime.db.session() as session:
                return not (await session.execute(select(Message))).scalars().all()

        await eventually(messages_gone, what="the retention task deleted the old messages")
        async with runtime.db.session() as session:
            assert (await session.execute(select(Message))).scalars().all() == []
    finally:
        for task in list(runtime.background):
            task.cancel()
    assert (await retention_run(runtime)).messages == 0
