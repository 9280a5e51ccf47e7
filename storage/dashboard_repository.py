"""The staff dashboard's figures: messages per day, top intents, fallbacks, ratings, SLA breaches."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.backend_models import ComplaintRecord
from storage.db import dialect_of
from storage.models import Message
from storage.staff_models import (
    Handoff,
    Rating,
)

FALLBACK_INTENT = "nlu_fallback"


def _local_day(session: AsyncSession, column: Any, timezone: str, at: datetime) -> Any:
    if dialect_of(session) == "postgresql":
        return cast(func.timezone(timezone, column), Date)
    offset = ZoneInfo(timezone).utcoffset(at.replace(tzinfo=None)) or timedelta()
    return func.date(column, f"{int(offset.total_seconds() // 60):+d} minutes")


async def messages_per_day(
    session: AsyncSession, *, since: datetime, timezone: str = "Asia/Pontianak"
) -> list[tuple[date, int]]:
    """Inbound resident messages per local day since ``since`` (days without messages omitted)."""
    day = _local_day(session, Message.created_at, timezone, since).label("day")
    stmt = (
        select(day, func.count())
        .where(Message.direction == "in", Message.created_at >= since)
        .group_by(day)
        .order_by(day)
    )
    rows = (await session.execute(stmt)).all()
    return [(d if isinstance(d, date) else date.fromisoformat(str(d)), int(str(n))) for d, n in rows]


async def top_intents(session: AsyncSession, *, since: datetime, limit: int = 8) -> list[tuple[str, int]]:
    """The most frequent understood intents of inbound messages since ``since``."""
    count = func.count().label("n")
    stmt = (
        select(Message.intent, count)
        .where(Message.direction == "in", Message.created_at >= since, Message.intent.is_not(None))
        .group_by(Message.intent)
        .order_by(count.desc(), Message.intent)
        .limit(limit)
    )
    return [(str(intent), int(n)) for intent, n in (await session.execute(stmt)).all()]


async def fallback_counts(session: AsyncSession, *, since: datetime) -> tuple[int, int]:
    """(misunderstood, understood-or-not) inbound messages with an intent since ``since``."""
    base = select(func.count()).where(
        Message.direction == "in", Message.created_at >= since, Message.intent.is_not(None)
    )
    total = int((await session.execute(base)).scalar_one())
    missed = int((await session.execute(base.where(Message.intent == FALLBACK_INTENT))).scalar_one())
    return missed, total


async def count_open_handoffs(session: AsyncSession) -> int:
    """How many handoffs wait for or are being worked by staff."""
    stmt = select(func.count()).select_from(Handoff).where(Handoff.closed_at.is_(None))
    return int((await session.execute(stmt)).scalar_one())


async def rating_distribution(session: AsyncSession, *, since: datetime) -> dict[int, int]:
    """How many ratings of each score 1-5 since ``since``."""
    stmt = (
        select(Rating.score, func.count())
        .where(Rating.created_at >= since)
        .group_by(Rating.score)
        .order_by(Rating.score)
    )
    counts = {score: 0 for score in range(1, 6)}
    for score, n in (await session.execute(stmt)).all():
        counts[int(score)] = int(n)
    return counts


FINAL_COMPLAINT_STATUSES = ("resolved", "rejected")


async def complaint_sla_breaches(
    session: AsyncSession, *, now: datetime, backend: str = "local"
) -> list[tuple[str, int]]:
    """Open complaints past their due date, counted per category (most first)."""
    count = func.count().label("n")
    stmt = (
        select(ComplaintRecord.category, count)
        .where(
            ComplaintRecord.backend == backend,
            ComplaintRecord.ticket.is_not(None),
            ComplaintRecord.status.not_in(FINAL_COMPLAINT_STATUSES),
            ComplaintRecord.due_at < now,
        )
        .group_by(ComplaintRecord.category)
        .order_by(count.desc(), ComplaintRecord.category)
    )
    return [(str(category), int(n)) for category, n in (await session.execute(stmt)).all()]
