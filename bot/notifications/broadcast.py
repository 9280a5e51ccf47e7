"""Announcements to subscribers or everyone: outbox rows queued in one transaction, sent by the dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import exists, insert, select

from bot.notifications.changes import (
    ANNOUNCEMENT,
    ANNOUNCEMENTS_TOPIC,
    BROADCAST_CHUNK,
    MAX_BROADCAST_CHARS,
    PUSH_CHANNELS,
    SEGMENTS,
    announcement_notice,
    broadcast_key_prefix,
)
from flows.texts import Texts
from storage import outbox as outbox_repo
from storage.db import Database
from storage.models import OutboxMessage, Resident, Subscription
from storage.notify_models import Broadcast
from storage.outbox import OutboxStatus

logger = logging.getLogger(__name__)


class BroadcastError(ValueError):
    """The announcement cannot be queued as asked (empty or too long text, unknown segment)."""


@dataclass(frozen=True, slots=True)
class BroadcastQueued:
    """A queued announcement: its id and how many residents it goes to."""

    id: int
    recipients: int


@dataclass(frozen=True, slots=True)
class BroadcastProgress:
    """Where the delivery of one announcement stands."""

    total: int
    sent: int = 0
    skipped: int = 0
    dead: int = 0
    waiting: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Rows that reached a final status."""
        return self.sent + self.skipped + self.dead

    @property
    def finished(self) -> bool:
        """True when every row is final."""
        return self.done >= self.total


async def queue_broadcast(
    db: Database,
    texts: Texts,
    *,
    text: str,
    segment: str = "subscribers",
    language: str | None = None,
    actor: str,
    urgent: bool = False,
    now: datetime | None = None,
) -> BroadcastQueued:
    """Queue an announcement through the outbox (the CLI and the staff console's broadcast form).

    ``segment``: ``subscribers`` (residents subscribed to announcements) or ``all`` (everyone who can
    be reached on a push channel). ``language``: only residents who speak it. Opted-out, erased and
    unreachable residents are left out; opt-out is checked again when each message is sent.

    Raises:
        BroadcastError: empty or too long text, unknown segment or language.
    """
    text = text.strip()
    if not text:
        raise BroadcastError("the announcement text is empty")
    if len(text) > MAX_BROADCAST_CHARS:
        raise BroadcastError(f"the announcement is longer than {MAX_BROADCAST_CHARS} characters")
    if segment not in SEGMENTS:
        raise BroadcastError(f"unknown segment {segment!r}; use one of {', '.join(SEGMENTS)}")
    if language is not None and language not in ("id", "en"):
        raise BroadcastError("language must be id or en")
    at = now or datetime.now(UTC)
    async with db.session() as session:
        broadcast = Broadcast(
            text=text, segment=segment, language=language, actor=actor[:64], recipients=0, created_at=at
        )
        session.add(broadcast)
        await session.flush()
        stmt = select(Resident.id, Resident.channel, Resident.external_id, Resident.language).where(
            Resident.opted_out.is_(False),
            Resident.erased_at.is_(None),
            Resident.unreachable.is_(False),
            Resident.channel.in_(PUSH_CHANNELS),
        )
        if language is not None:
            stmt = stmt.where(Resident.language == language)
        if segment == "subscribers":
            stmt = stmt.where(
                exists().where(
                    Subscription.resident_id == Resident.id,
                    Subscription.topic == ANNOUNCEMENTS_TOPIC,
                    Subscription.active.is_(True),
                )
            )
        residents = (await session.execute(stmt.order_by(Resident.id))).all()
        notices = {lang: announcement_notice(texts, lang, text) for lang in ("id", "en")}
        prefix = broadcast_key_prefix(broadcast.id)
        rows = [
            {
                "resident_id": resident_id,
                "channel": channel,
                "chat_id": chat_id,
                "kind": ANNOUNCEMENT,
                "body": notices.get(lang, notices["id"]).body(broadcast=broadcast.id, segment=segment),
                "idempotency_key": f"{prefix}{resident_id}",
                "status": OutboxStatus.PENDING,
                "urgent": urgent,
                "attempts": 0,
                "not_before": at,
                "created_at": at,
            }
            for resident_id, channel, chat_id, lang in residents
        ]
        for start in range(0, len(rows), BROADCAST_CHUNK):
            await session.execute(insert(OutboxMessage), rows[start : start + BROADCAST_CHUNK])
        broadcast.recipients = len(rows)
    logger.info(
        "broadcast %d queued by %s: segment=%s lang=%s recipients=%d",
        broadcast.id,
        actor,
        segment,
        language or "*",
        len(rows),
    )
    return BroadcastQueued(broadcast.id, len(rows))


async def broadcast_progress(db: Database, broadcast_id: int) -> BroadcastProgress:
    """How far the delivery of a broadcast has come."""
    async with db.session() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
        total = broadcast.recipients if broadcast is not None else 0
        counts = await outbox_repo.status_counts(session, key_prefix=broadcast_key_prefix(broadcast_id))
    return BroadcastProgress(
        total=total,
        sent=counts.get(OutboxStatus.SENT, 0),
        skipped=counts.get(OutboxStatus.SKIPPED, 0),
        dead=counts.get(OutboxStatus.DEAD, 0),
        waiting=counts.get(OutboxStatus.PENDING, 0) + counts.get(OutboxStatus.SENDING, 0),
        counts=counts,
    )


async def announce(
    db: Database,
    texts: Texts,
    *,
    wake: Callable[[], None],
    text: str,
    segment: str = "subscribers",
    language: str | None = None,
    actor: str,
    urgent: bool = False,
    now: datetime | None = None,
) -> BroadcastQueued:
    """The staff console's broadcast form: queue the announcement (due ``now``, the console's clock)
    and ``wake`` this process's dispatcher."""
    queued = await queue_broadcast(
        db, texts, text=text, segment=segment, language=language, actor=actor, urgent=urgent, now=now
    )
    wake()
    return queued
