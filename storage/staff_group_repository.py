"""The Telegram staff group: linked staff accounts, one forum topic per handoff, what was mirrored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Message
from storage.staff_models import (
    Handoff,
    StaffGroupTopic,
    StaffUser,
)
from storage.staff_repository import find_staff_user


async def link_telegram(
    session: AsyncSession, *, username: str, telegram_user_id: str | None
) -> StaffUser | None:
    """Set (or with None clear) the Telegram user id of an account; None when there is no such account.

    The id belongs to one account only: whoever had it before loses it.
    """
    user = await find_staff_user(session, username=username)
    if user is None:
        return None
    if telegram_user_id is not None:
        await session.execute(
            update(StaffUser)
            .where(StaffUser.telegram_user_id == telegram_user_id, StaffUser.id != user.id)
            .values(telegram_user_id=None)
        )
    user.telegram_user_id = telegram_user_id
    await session.flush()
    return user


async def staff_by_telegram(session: AsyncSession, *, telegram_user_id: str) -> StaffUser | None:
    """The active account linked to a Telegram user, or None."""
    stmt = select(StaffUser).where(StaffUser.telegram_user_id == telegram_user_id, StaffUser.active.is_(True))
    return (await session.execute(stmt)).scalar_one_or_none()


async def topic_of_handoff(session: AsyncSession, *, handoff_id: int) -> StaffGroupTopic | None:
    """The forum topic of a handoff, if one was opened."""
    return await session.get(StaffGroupTopic, handoff_id)


async def topic_by_thread(session: AsyncSession, *, chat_id: str, thread_id: int) -> StaffGroupTopic | None:
    """The topic (and so the handoff) a staff group message was written in."""
    stmt = select(StaffGroupTopic).where(
        StaffGroupTopic.chat_id == chat_id, StaffGroupTopic.thread_id == thread_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_topic(
    session: AsyncSession, *, handoff_id: int, chat_id: str, thread_id: int, mirrored_to: int, now: datetime
) -> StaffGroupTopic:
    """Remember the forum topic opened for a handoff."""
    topic = StaffGroupTopic(
        handoff_id=handoff_id, chat_id=chat_id, thread_id=thread_id, mirrored_to=mirrored_to, created_at=now
    )
    session.add(topic)
    await session.flush()
    return topic


async def handoffs_without_topic(session: AsyncSession, *, limit: int = 20) -> Sequence[Handoff]:
    """Open handoffs that have no forum topic yet, oldest first."""
    stmt = (
        select(Handoff)
        .outerjoin(StaffGroupTopic, StaffGroupTopic.handoff_id == Handoff.id)
        .where(Handoff.closed_at.is_(None), StaffGroupTopic.handoff_id.is_(None))
        .order_by(Handoff.opened_at, Handoff.id)
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def live_topics(session: AsyncSession) -> Sequence[tuple[StaffGroupTopic, Handoff]]:
    """Topics not closed yet, with their handoffs (open, or closed since the last look)."""
    stmt = (
        select(StaffGroupTopic, Handoff)
        .join(Handoff, Handoff.id == StaffGroupTopic.handoff_id)
        .where(StaffGroupTopic.closed_at.is_(None))
        .order_by(StaffGroupTopic.handoff_id)
    )
    return [(topic, handoff) for topic, handoff in (await session.execute(stmt)).all()]


async def messages_after(
    session: AsyncSession, *, conversation_id: int, after_id: int, limit: int = 50
) -> Sequence[Message]:
    """Transcript lines of a conversation with id > ``after_id``, oldest first."""
    stmt = (
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.id > after_id)
        .order_by(Message.id)
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()
