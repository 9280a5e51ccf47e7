"""Live booth counters: visitors, conversations, complaints filed and top questions (today, WIB)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.backend_models import ComplaintRecord
from storage.models import Message, Resident

QUESTION_INTENTS = (
    "permit_status",
    "document_requirements",
    "service_fee",
    "processing_time",
    "office_hours",
    "office_location",
    "file_complaint",
    "complaint_status",
    "talk_to_staff",
    "subscribe_updates",
    "emergency",
)
BOOTH_SOURCE = "cfd"


@dataclass(frozen=True, slots=True)
class BoothStats:
    """Today's counters for the booth screen."""

    visitors: int
    conversations: int
    complaints: int
    top_questions: tuple[tuple[str, int], ...]


def start_of_day(now: datetime, timezone: ZoneInfo) -> datetime:
    """Midnight of ``now``'s date in ``timezone``, as UTC."""
    local = now.astimezone(timezone)
    return datetime.combine(local.date(), time.min, tzinfo=timezone).astimezone(UTC)


async def booth_stats(
    session: AsyncSession, *, now: datetime, timezone: ZoneInfo, top: int = 5
) -> BoothStats:
    """Counters since midnight WIB: booth visitors, active conversations, complaints, top questions."""
    since = start_of_day(now, timezone)
    visitors = await session.scalar(
        select(func.count())
        .select_from(Resident)
        .where(Resident.source == BOOTH_SOURCE, Resident.created_at >= since)
    )
    conversations = await session.scalar(
        select(func.count(distinct(Message.conversation_id))).where(
            Message.direction == "in", Message.created_at >= since
        )
    )
    complaints = await session.scalar(
        select(func.count()).select_from(ComplaintRecord).where(ComplaintRecord.created_at >= since)
    )
    count = func.count().label("n")
    rows = (
        await session.execute(
            select(Message.intent, count)
            .where(
                Message.direction == "in",
                Message.created_at >= since,
                Message.intent.in_(QUESTION_INTENTS),
            )
            .group_by(Message.intent)
            .order_by(count.desc(), Message.intent)
            .limit(top)
        )
    ).all()
    return BoothStats(
        visitors=int(visitors or 0),
        conversations=int(conversations or 0),
        complaints=int(complaints or 0),
        top_questions=tuple((str(intent), int(n)) for intent, n in rows),
    )
