"""The operations figures /metrics reads from the database: a few indexed COUNT queries, one snapshot.

Each query walks an index: the outbox by ``(status, not_before)``, handoffs by ``(closed_at, opened_at)``,
complaints by ``(status, next_attempt_at)``, recent messages by ``created_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.backend_models import ComplaintRecord
from storage.dashboard_repository import FINAL_COMPLAINT_STATUSES
from storage.models import Conversation, Message, OutboxMessage, Resident
from storage.outbox import OutboxStatus
from storage.staff_models import Handoff

ACTIVE_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class OutboxFigures:
    """One channel's outbox: rows waiting (pending or being sent), the oldest due one's age, dead letters."""

    depth: int = 0
    oldest_due_age: float = 0.0  # seconds since the oldest pending row became due (0: none is due)
    dead: int = 0


@dataclass(frozen=True, slots=True)
class OpsFigures:
    """What the database says at one moment (``now``)."""

    now: datetime
    handoffs_waiting: int = 0  # open, no staff reply yet
    handoffs_answered: int = 0  # open, a person has replied
    oldest_waiting_handoff: float = 0.0  # seconds
    complaints: dict[str, int] = field(default_factory=dict)  # status -> rows
    complaints_overdue: int = 0
    outbox: dict[str, OutboxFigures] = field(default_factory=dict)  # channel -> figures
    active_conversations: dict[str, int] = field(default_factory=dict)  # channel -> conversations


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite gives naive UTC
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


async def ops_figures(session: AsyncSession, *, now: datetime) -> OpsFigures:
    """Handoffs, complaints, outbox and active conversations now."""
    handoffs = (
        await session.execute(
            select(
                func.count(),
                func.count(Handoff.first_reply_at),
                func.min(Handoff.opened_at).filter(Handoff.first_reply_at.is_(None)),
            ).where(Handoff.closed_at.is_(None))
        )
    ).one()
    open_handoffs, answered, oldest_opened = int(handoffs[0]), int(handoffs[1]), handoffs[2]

    complaints = {
        str(status): int(n)
        for status, n in (
            await session.execute(
                select(ComplaintRecord.status, func.count()).group_by(ComplaintRecord.status)
            )
        ).all()
    }
    overdue = (
        await session.execute(
            select(func.count()).where(
                ComplaintRecord.status.not_in(FINAL_COMPLAINT_STATUSES),
                ComplaintRecord.ticket.is_not(None),
                ComplaintRecord.due_at < now,
            )
        )
    ).scalar_one()

    waiting = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.DEAD)
    rows = (
        await session.execute(
            select(
                OutboxMessage.channel,
                OutboxMessage.status,
                func.count(),
                func.min(OutboxMessage.not_before),
            )
            .where(OutboxMessage.status.in_(waiting))
            .group_by(OutboxMessage.channel, OutboxMessage.status)
        )
    ).all()
    outbox: dict[str, OutboxFigures] = {}
    for channel, status, n, first_due in rows:
        figures = outbox.get(channel, OutboxFigures())
        if status == OutboxStatus.DEAD:
            figures = OutboxFigures(figures.depth, figures.oldest_due_age, figures.dead + int(n))
        else:
            # The earliest not_before of pending rows: in the past, it is the oldest due row.
            age = _age(now, first_due) if status == OutboxStatus.PENDING else 0.0
            figures = OutboxFigures(figures.depth + int(n), max(figures.oldest_due_age, age), figures.dead)
        outbox[channel] = figures

    active = {
        str(channel): int(n)
        for channel, n in (
            await session.execute(
                select(Resident.channel, func.count(func.distinct(Message.conversation_id)))
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(Resident, Resident.id == Conversation.resident_id)
                .where(Message.created_at >= now - ACTIVE_WINDOW, Message.direction == "in")
                .group_by(Resident.channel)
            )
        ).all()
    }
    return OpsFigures(
        now=now,
        handoffs_waiting=open_handoffs - answered,
        handoffs_answered=answered,
        oldest_waiting_handoff=_age(now, oldest_opened),
        complaints=complaints,
        complaints_overdue=int(overdue),
        outbox=outbox,
        active_conversations=active,
    )
