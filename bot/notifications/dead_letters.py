"""Dead letters: outbox rows that gave up, as the staff console lists and requeues them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.privacy import mask_id
from storage import outbox as outbox_repo
from storage.db import Database

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An outbox row that gave up, as staff see it (chat id masked)."""

    id: int
    resident_id: int
    channel: str
    chat: str
    kind: str
    text: str
    attempts: int
    last_error: str | None
    created_at: datetime


async def dead_letters(
    db: Database, *, limit: int = 50, offset: int = 0, channel: str | None = None
) -> list[DeadLetter]:
    """Dead letters for the staff console, newest first."""
    async with db.session() as session:
        rows = await outbox_repo.dead_letters(session, limit=limit, offset=offset, channel=channel)
        return [
            DeadLetter(
                id=row.id,
                resident_id=row.resident_id,
                channel=row.channel,
                chat=mask_id(row.chat_id),
                kind=row.kind,
                text=str((row.body or {}).get("text", "")),
                attempts=row.attempts,
                last_error=row.last_error,
                created_at=row.created_at,
            )
            for row in rows
        ]


async def requeue(db: Database, outbox_id: int, actor: str, *, now: datetime | None = None) -> bool:
    """Send a dead letter again from scratch; False when ``outbox_id`` is not a dead letter."""
    at = now or datetime.now(UTC)
    async with db.session() as session:
        done = await outbox_repo.requeue(session, outbox_id=outbox_id, now=at, note=f"requeued by {actor}")
    if done:
        logger.info("outbox %d requeued by %s", outbox_id, actor)
    return done
