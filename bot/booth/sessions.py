"""Demo sessions at the booth: start idle ones afresh, and clear them all after the event."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from bot.booth.stats import BOOTH_SOURCE
from storage.db import Database
from storage.models import Conversation, Resident
from storage.types import utcnow

logger = logging.getLogger(__name__)
IDLE_CHECK_SECONDS = 60.0


async def reset_idle_demo_sessions(db: Database, *, idle_minutes: int, now: datetime) -> int:
    """Put booth conversations idle for ``idle_minutes`` back to the start; returns how many."""
    cutoff = now - timedelta(minutes=idle_minutes)
    booth_residents = select(Resident.id).where(Resident.source == BOOTH_SOURCE)
    async with db.session() as session:
        result = await session.execute(
            update(Conversation)
            .where(
                Conversation.resident_id.in_(booth_residents),
                Conversation.updated_at < cutoff,
                Conversation.status == "bot",
                Conversation.state.is_not(None),
            )
            .values(state=None, slots={}, updated_at=now)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def clear_demo_sessions(db: Database) -> int:
    """Delete every booth visitor's resident record (conversations and transcripts go with it)."""
    async with db.session() as session:
        result = await session.execute(delete(Resident).where(Resident.source == BOOTH_SOURCE))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def idle_reset_loop(db: Database, *, idle_minutes: int) -> None:
    """Every minute, start idle booth conversations afresh (booth mode only)."""
    while True:
        try:
            count = await reset_idle_demo_sessions(db, idle_minutes=idle_minutes, now=utcnow())
            if count:
                logger.info("booth: reset %d idle demo conversations", count)
        except Exception:
            logger.exception("booth: idle demo session reset failed")
        await asyncio.sleep(IDLE_CHECK_SECONDS)
