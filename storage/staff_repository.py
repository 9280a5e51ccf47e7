"""Keyword-only data access for the staff side: accounts, sessions, throttling, handoffs, ratings, audit,
the Telegram staff group's topics, complaint service-level breaches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Conversation, Message, Resident
from storage.staff_models import (
    AuditEntry,
    Handoff,
    LoginThrottle,
    Rating,
    StaffSession,
    StaffUser,
)
from storage.types import utcnow

HANDOFF_STATUS = "handoff"
BOT_STATUS = "bot"
FALLBACK_INTENT = "nlu_fallback"


# --- accounts and sessions ---------------------------------------------------------------------


async def create_staff_user(
    session: AsyncSession,
    *,
    username: str,
    password_hash: str,
    role: str,
    display_name: str | None = None,
) -> StaffUser:
    """Add a console account (the caller hashes the password)."""
    user = StaffUser(
        username=username,
        password_hash=password_hash,
        role=role,
        display_name=display_name,
        active=True,
        created_at=utcnow(),
    )
    session.add(user)
    await session.flush()
    return user


async def get_staff_user(session: AsyncSession, *, user_id: int) -> StaffUser | None:
    """One account by id."""
    return await session.get(StaffUser, user_id)


async def find_staff_user(session: AsyncSession, *, username: str) -> StaffUser | None:
    """One account by user name (case-insensitive)."""
    stmt = select(StaffUser).where(func.lower(StaffUser.username) == username.casefold())
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_staff_users(session: AsyncSession, *, active_only: bool = False) -> Sequence[StaffUser]:
    """Every account, by user name."""
    stmt = select(StaffUser).order_by(StaffUser.username)
    if active_only:
        stmt = stmt.where(StaffUser.active.is_(True))
    return (await session.execute(stmt)).scalars().all()


async def create_staff_session(
    session: AsyncSession,
    *,
    token_hash: str,
    user_id: int,
    csrf_token: str,
    expires_at: datetime,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
) -> StaffSession:
    """Record a signed-in browser by the hash of its cookie token."""
    row = StaffSession(
        token_hash=token_hash,
        user_id=user_id,
        csrf_token=csrf_token,
        expires_at=expires_at,
        created_at=now,
        last_seen_at=now,
        ip=ip,
        user_agent=(user_agent or "")[:256] or None,
    )
    session.add(row)
    await session.flush()
    return row


async def live_staff_session(
    session: AsyncSession, *, token_hash: str, now: datetime
) -> tuple[StaffSession, StaffUser] | None:
    """The unexpired session and its active account for a cookie token's hash, else None."""
    stmt = (
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.user_id)
        .where(
            StaffSession.token_hash == token_hash,
            StaffSession.expires_at > now,
            StaffUser.active.is_(True),
        )
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row is not None else None


async def delete_staff_session(session: AsyncSession, *, token_hash: str) -> None:
    """Forget one session (logout)."""
    await session.execute(delete(StaffSession).where(StaffSession.token_hash == token_hash))


async def delete_expired_staff_sessions(session: AsyncSession, *, now: datetime) -> int:
    """Drop sessions past their expiry; returns how many."""
    result = await session.execute(delete(StaffSession).where(StaffSession.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def login_lock(session: AsyncSession, *, key: str, now: datetime) -> datetime | None:
    """When logins for ``key`` (user name and address) are locked until, if they are now."""
    row = await session.get(LoginThrottle, key)
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


async def record_login_failure(
    session: AsyncSession,
    *,
    key: str,
    now: datetime,
    max_failures: int,
    lock_for: timedelta,
) -> datetime | None:
    """Count one failed login for ``key``; returns the lock's end when this failure locks it."""
    row = await session.get(LoginThrottle, key)
    if row is None:
        row = LoginThrottle(key=key, failures=0, first_failure_at=now)
        session.add(row)
    elif row.locked_until is not None and row.locked_until <= now:
        # An expired lock starts a fresh count.
        row.failures = 0
        row.locked_until = None
        row.first_failure_at = now
    row.failures += 1
    if row.failures >= max_failures:
        row.locked_until = now + lock_for
        row.failures = 0
        await session.flush()
        return row.locked_until
    await session.flush()
    return None


async def clear_login_failures(session: AsyncSession, *, key: str) -> None:
    """Forget failures for ``key`` after a successful login."""
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


# --- handoffs -----------------------------------------------------------------------------------


async def conversation_of_resident(session: AsyncSession, *, resident_id: int) -> Conversation | None:
    """The conversation of one resident (the same object the turn's session already holds)."""
    stmt = select(Conversation).where(Conversation.resident_id == resident_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def open_handoff_of(session: AsyncSession, *, conversation_id: int) -> Handoff | None:
    """The conversation's open handoff, if any."""
    stmt = (
        select(Handoff)
        .where(Handoff.conversation_id == conversation_id, Handoff.closed_at.is_(None))
        .order_by(Handoff.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def open_handoff(
    session: AsyncSession,
    *,
    conversation: Conversation,
    reason: str,
    now: datetime,
    urgent: bool = False,
    context: dict[str, Any] | None = None,
) -> Handoff:
    """Hand the conversation to staff (or return the handoff already open); the bot goes silent."""
    existing = await open_handoff_of(session, conversation_id=conversation.id)
    conversation.status = HANDOFF_STATUS
    if existing is not None:
        existing.urgent = existing.urgent or urgent
        return existing
    handoff = Handoff(
        conversation_id=conversation.id,
        reason=reason,
        urgent=urgent,
        context=context or {},
        opened_at=now,
    )
    session.add(handoff)
    await session.flush()
    return handoff


async def close_handoff(
    session: AsyncSession,
    *,
    handoff: Handoff,
    conversation: Conversation,
    closed_by: str,
    now: datetime,
    note: str | None = None,
) -> None:
    """Close a handoff and give the conversation back to the bot."""
    handoff.closed_at = now
    handoff.closed_by = closed_by
    handoff.close_note = note
    conversation.status = BOT_STATUS


async def get_handoff(session: AsyncSession, *, handoff_id: int) -> Handoff | None:
    """One handoff by id."""
    return await session.get(Handoff, handoff_id)


@dataclass(frozen=True, slots=True)
class HandoffRow:
    """A handoff with what a queue or detail page shows about it."""

    handoff: Handoff
    conversation: Conversation
    resident: Resident
    assignee: StaffUser | None
    last_inbound_at: datetime | None
    last_inbound_text: str | None


async def handoff_rows(
    session: AsyncSession, *, open_only: bool = True, handoff_id: int | None = None, limit: int = 200
) -> list[HandoffRow]:
    """Handoffs (open ones, urgent first then oldest first; or one by id) with resident and assignee."""
    stmt = (
        select(Handoff, Conversation, Resident, StaffUser)
        .join(Conversation, Conversation.id == Handoff.conversation_id)
        .join(Resident, Resident.id == Conversation.resident_id)
        .outerjoin(StaffUser, StaffUser.id == Handoff.assigned_to)
    )
    if handoff_id is not None:
        stmt = stmt.where(Handoff.id == handoff_id)
    elif open_only:
        stmt = stmt.where(Handoff.closed_at.is_(None)).order_by(Handoff.urgent.desc(), Handoff.opened_at)
    else:
        stmt = stmt.order_by(Handoff.opened_at.desc())
    rows = (await session.execute(stmt.limit(limit))).all()
    result = []
    for handoff, conversation, resident, assignee in rows:
        last = (
            await session.execute(
                select(Message.created_at, Message.text)
                .where(Message.conversation_id == conversation.id, Message.direction == "in")
                .order_by(Message.id.desc())
                .limit(1)
            )
        ).first()
        result.append(
            HandoffRow(
                handoff,
                conversation,
                resident,
                assignee,
                last[0] if last else None,
                last[1] if last else None,
            )
        )
    return result


async def last_unrated_handoff(session: AsyncSession, *, conversation_id: int) -> Handoff | None:
    """The conversation's most recently closed handoff that has no rating yet."""
    stmt = (
        select(Handoff)
        .outerjoin(Rating, Rating.handoff_id == Handoff.id)
        .where(
            Handoff.conversation_id == conversation_id,
            Handoff.closed_at.is_not(None),
            Rating.id.is_(None),
        )
        .order_by(Handoff.closed_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_rating(session: AsyncSession, *, handoff: Handoff, score: int, now: datetime) -> Rating:
    """Store the resident's 1-5 score for a closed handoff."""
    if not 1 <= score <= 5:
        raise ValueError(f"a rating is 1 to 5, got {score}")
    rating = Rating(
        handoff_id=handoff.id, conversation_id=handoff.conversation_id, score=score, created_at=now
    )
    session.add(rating)
    await session.flush()
    return rating


async def rating_of(session: AsyncSession, *, handoff_id: int) -> Rating | None:
    """The rating given to one handoff, if any."""
    stmt = select(Rating).where(Rating.handoff_id == handoff_id)
    return (await session.execute(stmt)).scalar_one_or_none()


# --- audit log ----------------------------------------------------------------------------------


async def add_audit(
    session: AsyncSession,
    *,
    who: str,
    what: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    staff_user_id: int | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Write one audit line (who did what, when, to what)."""
    entry = AuditEntry(
        who=who[:64],
        what=what,
        target=target,
        details=details or {},
        staff_user_id=staff_user_id,
        ip=ip,
        created_at=now or utcnow(),
    )
    session.add(entry)
    await session.flush()
    return entry


async def audit_entries(
    session: AsyncSession, *, limit: int = 100, before_id: int | None = None, what: str | None = None
) -> Sequence[AuditEntry]:
    """Audit lines, newest first (``before_id`` pages back; ``what`` filters by action prefix)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    if what:
        stmt = stmt.where(AuditEntry.what.startswith(what))
    return (await session.execute(stmt)).scalars().all()
