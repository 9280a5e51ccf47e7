"""The outbox's life cycle, as keyword-only functions on the caller's session.

A row moves ``pending`` → ``sending`` (claimed: ``claimed_until`` is the lease, ``attempts`` counts the
claims) → ``sent`` | ``pending`` again (retry at ``not_before``) | ``dead`` (dead letter, staff may
requeue) | ``skipped`` (the resident opted out, unsubscribed or blocked us before it went out).
``(id, attempts)`` identifies one claim: every update after the send names both, so a claimer whose
lease was taken over can never overwrite the newer claimer's result.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxMessage
from storage.notify_models import ChangeCursor


class OutboxStatus:
    """The values of ``outbox.status``."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"
    SKIPPED = "skipped"

    FINAL = frozenset({SENT, DEAD, SKIPPED})


@dataclass(frozen=True, slots=True)
class Claim:
    """One claimed row, as the sender needs it (no ORM object crosses the transaction)."""

    id: int
    resident_id: int
    channel: str
    chat_id: str
    kind: str
    body: dict[str, object]
    idempotency_key: str
    urgent: bool
    attempts: int
    lease_until: datetime
    reclaimed: bool  # the previous claim's lease lapsed: its sender may have died mid-send


def _due(now: datetime, hold_kinds: Collection[str]) -> list[object]:
    conditions: list[object] = [
        or_(
            and_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.not_before <= now),
            and_(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.claimed_until < now),
        )
    ]
    if hold_kinds:
        conditions.append(or_(OutboxMessage.urgent.is_(True), OutboxMessage.kind.not_in(list(hold_kinds))))
    return conditions


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    hold_kinds: Collection[str] = (),
    exclude_ids: Collection[int] = (),
) -> list[Claim]:
    """Claim up to ``limit`` due rows (oldest first) until ``lease_until``; skips rows others hold.

    Due: pending with ``not_before`` passed, or being sent by a claimer whose lease lapsed. Rows of
    ``hold_kinds`` (quiet hours) stay unless urgent. On PostgreSQL the rows are locked ``FOR UPDATE SKIP
    LOCKED``, so concurrent claimers take disjoint rows; SQLite ignores the clause (one claimer there).
    """
    stmt = select(OutboxMessage).where(*_due(now, hold_kinds))  # type: ignore[arg-type]
    if exclude_ids:
        stmt = stmt.where(OutboxMessage.id.not_in(list(exclude_ids)))
    stmt = stmt.order_by(OutboxMessage.not_before, OutboxMessage.id).limit(limit)
    rows = (await session.execute(stmt.with_for_update(skip_locked=True))).scalars().all()
    claims: list[Claim] = []
    for row in rows:
        reclaimed = row.status == OutboxStatus.SENDING
        row.status = OutboxStatus.SENDING
        row.attempts += 1
        row.claimed_until = lease_until
        claims.append(
            Claim(
                id=row.id,
                resident_id=row.resident_id,
                channel=row.channel,
                chat_id=row.chat_id,
                kind=row.kind,
                body=dict(row.body or {}),
                idempotency_key=row.idempotency_key,
                urgent=row.urgent,
                attempts=row.attempts,
                lease_until=lease_until,
                reclaimed=reclaimed,
            )
        )
    await session.flush()
    return claims


async def next_due_at(
    session: AsyncSession, *, hold_kinds: Collection[str] = (), exclude_ids: Collection[int] = ()
) -> datetime | None:
    """When the next pending (or leased) row becomes due, or None when nothing waits."""
    pending = select(func.min(OutboxMessage.not_before)).where(OutboxMessage.status == OutboxStatus.PENDING)
    leased = select(func.min(OutboxMessage.claimed_until)).where(OutboxMessage.status == OutboxStatus.SENDING)
    if hold_kinds:
        free = or_(OutboxMessage.urgent.is_(True), OutboxMessage.kind.not_in(list(hold_kinds)))
        pending, leased = pending.where(free), leased.where(free)
    if exclude_ids:
        leased = leased.where(OutboxMessage.id.not_in(list(exclude_ids)))
    times = [(await session.execute(q)).scalar_one_or_none() for q in (pending, leased)]
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _mine(claim_id: int, attempts: int) -> list[object]:
    return [
        OutboxMessage.id == claim_id,
        OutboxMessage.attempts == attempts,
        OutboxMessage.status == OutboxStatus.SENDING,
    ]


async def extend_leases(
    session: AsyncSession, *, claims: Sequence[tuple[int, int]], lease_until: datetime
) -> int:
    """Push the lease of rows still being sent (``(id, attempts)`` pairs) to ``lease_until``."""
    extended = 0
    for claim_id, attempts in claims:
        result = await session.execute(
            update(OutboxMessage).where(*_mine(claim_id, attempts)).values(claimed_until=lease_until)  # type: ignore[arg-type]
        )
        extended += int(result.rowcount)  # type: ignore[attr-defined]
    return extended


async def mark_sent(
    session: AsyncSession,
    *,
    claim_id: int,
    attempts: int,
    provider_message_id: str | None,
    at: datetime,
    delivery_status: str | None = None,
) -> bool:
    """Record a delivered row; False when this claim no longer holds the row."""
    result = await session.execute(
        update(OutboxMessage)
        .where(*_mine(claim_id, attempts))  # type: ignore[arg-type]
        .values(
            status=OutboxStatus.SENT,
            provider_message_id=provider_message_id,
            delivery_status=delivery_status,
            sent_at=at,
            claimed_until=None,
            last_error=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def reschedule(
    session: AsyncSession,
    *,
    claim_id: int,
    attempts: int,
    not_before: datetime,
    error: str | None,
    count_attempt: bool = True,
) -> bool:
    """Put a claimed row back to pending until ``not_before`` (not counted: a 429, or a hand-back)."""
    values: dict[str, object] = {
        "status": OutboxStatus.PENDING,
        "not_before": not_before,
        "claimed_until": None,
    }
    if error is not None:
        values["last_error"] = error[:2000]
    if not count_attempt:
        values["attempts"] = attempts - 1
    result = await session.execute(update(OutboxMessage).where(*_mine(claim_id, attempts)).values(**values))  # type: ignore[arg-type]
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def finish(session: AsyncSession, *, claim_id: int, attempts: int, status: str, error: str) -> bool:
    """End a claimed row as ``dead`` (dead letter) or ``skipped``, with the reason."""
    result = await session.execute(
        update(OutboxMessage)
        .where(*_mine(claim_id, attempts))  # type: ignore[arg-type]
        .values(status=status, claimed_until=None, last_error=error[:2000])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def dead_letters(
    session: AsyncSession, *, limit: int = 50, offset: int = 0, channel: str | None = None
) -> Sequence[OutboxMessage]:
    """Rows that gave up (newest first)."""
    stmt = select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.DEAD)
    if channel is not None:
        stmt = stmt.where(OutboxMessage.channel == channel)
    stmt = stmt.order_by(OutboxMessage.id.desc()).limit(limit).offset(offset)
    return (await session.execute(stmt)).scalars().all()


async def count_dead(session: AsyncSession) -> int:
    """How many dead letters there are."""
    stmt = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == OutboxStatus.DEAD)
    return int((await session.execute(stmt)).scalar_one())


async def requeue(session: AsyncSession, *, outbox_id: int, now: datetime, note: str) -> bool:
    """Give a dead letter a fresh start (attempts 0, due now); False when it is not a dead letter."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.status == OutboxStatus.DEAD)
        .values(
            status=OutboxStatus.PENDING,
            attempts=0,
            not_before=now,
            claimed_until=None,
            last_error=note[:2000],
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def status_counts(session: AsyncSession, *, key_prefix: str | None = None) -> dict[str, int]:
    """Rows per status (of the rows whose idempotency key starts with ``key_prefix``)."""
    stmt = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    if key_prefix is not None:
        stmt = stmt.where(OutboxMessage.idempotency_key.startswith(key_prefix, autoescape=True))
    return {status: int(count) for status, count in (await session.execute(stmt)).all()}


async def get_cursor(session: AsyncSession, *, source: str) -> ChangeCursor | None:
    """The stored change cursor of ``source`` (locked for update on PostgreSQL)."""
    stmt = select(ChangeCursor).where(ChangeCursor.source == source).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def store_cursor(
    session: AsyncSession, *, source: str, cursor: str | None, at: datetime, changes: int
) -> None:
    """Store the cursor to poll ``source`` from next time (in the transaction that queued its changes)."""
    row = await session.get(ChangeCursor, source)
    if row is None:
        session.add(ChangeCursor(source=source, cursor=cursor, polled_at=at, changes=changes))
    else:
        row.cursor = cursor
        row.polled_at = at
        row.changes += changes
    await session.flush()
