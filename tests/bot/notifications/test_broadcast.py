"""Announcements: queued through the outbox for a segment, delivered with a progress bar (CLI)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.notifications.broadcast import BroadcastError, broadcast_progress, queue_broadcast
from bot.notifications.changes import announcement_notice
from bot.settings import Settings
from storage import repositories as repo
from storage.db import Database
from storage.models import Message, OutboxMessage
from tests.bot.notifications.conftest import TEXTS
from tests.conftest import REPO

ANNOUNCEMENT = "Car Free Day Minggu ini dipindah ke Jalan Ahmad Yani."


async def residents(db: Database) -> dict[str, int]:
    """Web chat residents: two subscribed to announcements (id, en), one not, one opted out."""
    ids: dict[str, int] = {}
    async with db.session() as session:
        for name, lang in (("sub-id", "id"), ("sub-en", "en"), ("plain", "id"), ("stopped", "id")):
            resident = await repo.get_or_create_resident(
                session, channel="webchat", external_id=name, language=lang
            )
            ids[name] = resident.id
            if name != "plain":
                await repo.subscribe(session, resident_id=resident.id, topic="announcements", ref="*")
        await repo.unsubscribe(session, resident_id=ids["stopped"])  # BERHENTI
    return ids


async def test_segments_and_languages_choose_the_recipients(db: Database) -> None:
    await residents(db)

    subscribers = await queue_broadcast(db, TEXTS, text=ANNOUNCEMENT, segment="subscribers", actor="admin")
    everyone = await queue_broadcast(db, TEXTS, text=ANNOUNCEMENT, segment="all", actor="admin")
    english = await queue_broadcast(db, TEXTS, text=ANNOUNCEMENT, segment="all", language="en", actor="admin")
    async with db.session() as session:
        rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().all()

    assert (subscribers.recipients, everyone.recipients, english.recipients) == (2, 3, 1)
    first = [r for r in rows if r.idempotency_key.startswith(f"broadcast:{subscribers.id}:")]
    assert [(r.chat_id, r.kind, r.body["text"]) for r in first] == [
        ("sub-id", "announcement", announcement_notice(TEXTS, "id", ANNOUNCEMENT).reply.text),
        ("sub-en", "announcement", announcement_notice(TEXTS, "en", ANNOUNCEMENT).reply.text),
    ]
    progress = await broadcast_progress(db, subscribers.id)
    assert (progress.total, progress.waiting, progress.finished) == (2, 2, False)


@pytest.mark.parametrize(
    ("text", "segment", "problem"),
    [("   ", "subscribers", "empty"), ("x" * 1001, "all", "longer"), ("ok", "everyone", "unknown segment")],
)
async def test_a_bad_broadcast_is_refused(db: Database, text: str, segment: str, problem: str) -> None:
    with pytest.raises(BroadcastError, match=problem):
        await queue_broadcast(db, TEXTS, text=text, segment=segment, actor="admin")


async def test_the_cli_queues_and_delivers_with_a_progress_bar_when_no_server_runs(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    try:
        ids = await residents(db)
    finally:
        await db.dispose()
    text_file = tmp_path / "pengumuman.txt"
    text_file.write_text(ANNOUNCEMENT + "\n", encoding="utf-8")
    env = {
        **os.environ,
        "PONTIBOT_DATABASE__URL": database_url,
        "PONTIBOT_NLU__MODEL_DIR": str(settings.nlu.model_dir),
        "PONTIBOT_NOTIFICATIONS__QUIET_HOURS": "",
        "PONTIBOT_NOTIFICATIONS__DISPATCH_INTERVAL_SECONDS": "0.2",
        "COLUMNS": "120",
    }
    env.pop("DATABASE_URL", None)

    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "pontibot"),
        "broadcast",
        "--text-file",
        str(text_file),
        "--segment",
        "subscribers",
        "--config",
        str(REPO / "config.yml"),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=110)
    output = err.decode()

    db = Database(database_url)
    try:
        async with db.session() as session:
            pushed = (
                await session.execute(
                    select(Message.conversation_id, Message.text).where(Message.kind == "push")
                )
            ).all()
            statuses = (await session.execute(select(OutboxMessage.chat_id, OutboxMessage.status))).all()
    finally:
        await db.dispose()
    assert process.returncode == 0, output
    assert "broadcast 1: 2 recipients" in output and "2/2" in output and "sent 2, skipped 0" in output
    assert sorted(statuses) == [("sub-en", "sent"), ("sub-id", "sent")]
    assert sorted(text for _, text in pushed) == sorted(
        announcement_notice(TEXTS, lang, ANNOUNCEMENT).reply.text for lang in ("id", "en")
    )
    assert len(ids) == 4
