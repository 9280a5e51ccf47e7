"""Keyword-only data access functions; each takes the session of the caller's unit of work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_of
from storage.models import (
    Conversation,
    Message,
    OutboxMessage,
    ProcessedMessage,
    Resident,
    Subscription,
)
from storage.types import utcnow


def _insert(session: AsyncSession, model: Any) -> Any:
    if dialect_of(session) == "postgresql":
        return pg_insert(model)
    return sqlite_insert(model)


async def claim_platform_message(
    session: AsyncSession, *, channel: str, chat_id: str, message_id: str
) -> bool:
    """Record that message ``message_id`` of the chat is being handled; False when it was seen before."""
    stmt = (
        _insert(session, ProcessedMessage)
        .values(channel=channel, chat_id=chat_id, message_id=message_id, response={}, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["channel", "chat_id", "message_id"])
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def get_processed_message(
    session: AsyncSession, *, channel: str, chat_id: str, message_id: str
) -> ProcessedMessage | None:
    """The record of a handled platform message of the chat (with the replies it got), if any."""
    return await session.get(ProcessedMessage, (channel, chat_id, message_id))


async def get_or_create_resident(
    session: AsyncSession,
    *,
    channel: str,
    external_id: str,
    display_name: str | None = None,
    language: str = "id",
) -> Resident:
    """The resident behind ``(channel, external_id)``, created on first contact."""
    stmt = select(Resident).where(Resident.channel == channel, Resident.external_id == external_id)
    resident = (await session.execute(stmt)).scalar_one_or_none()
    if resident is not None:
        return resident
    await session.execute(
        _insert(session, Resident)
        .values(
            channel=channel,
            external_id=external_id,
            display_name=display_name,
            language=language,
            language_explicit=False,
            opted_out=False,
            unreachable=False,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
    )
    return (await session.execute(stmt)).scalar_one()


async def get_resident(session: AsyncSession, *, resident_id: int) -> Resident | None:
    """One resident by id."""
    return await session.get(Resident, resident_id)


async def get_or_create_conversation(session: AsyncSession, *, resident: Resident) -> Conversation:
    """The resident's conversation (one per resident identity), created on first contact."""
    stmt = select(Conversation).where(Conversation.resident_id == resident.id)
    conversation = (await session.execute(stmt)).scalar_one_or_none()
    if conversation is not None:
        return conversation
    await session.execute(
        _insert(session, Conversation)
        .values(
            resident_id=resident.id,
            slots={},
            status="bot",
            version=0,
            turns=0,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["resident_id"])
    )
    return (await session.execute(stmt)).scalar_one()


async def update_resident(session: AsyncSession, *, resident_id: int, values: Mapping[str, Any]) -> None:
    """Set some of a resident's columns (what a turn learnt: language, where they came from)."""
    await session.execute(
        update(Resident).where(Resident.id == resident_id).values(dict(values)),
        execution_options={"synchronize_session": False},
    )


async def find_conversation(session: AsyncSession, *, channel: str, external_id: str) -> Conversation | None:
    """The conversation of ``(channel, external_id)`` if that resident exists."""
    stmt = (
        select(Conversation)
        .join(Resident, Resident.id == Conversation.resident_id)
        .where(Resident.channel == channel, Resident.external_id == external_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def set_unreachable(
    session: AsyncSession, *, channel: str, external_id: str, unreachable: bool
) -> None:
    """Mark a resident who blocked the bot (or unblocked it) on ``channel``."""
    await session.execute(
        update(Resident)
        .where(Resident.channel == channel, Resident.external_id == external_id)
        .values(unreachable=unreachable)
    )


async def recent_reply_data(
    session: AsyncSession, *, channel: str, external_id: str, limit: int
) -> Sequence[dict[str, Any] | None]:
    """The ``data`` of the last ``limit`` lines the bot sent to a chat, newest first (buttons live there)."""
    conversation = await find_conversation(session, channel=channel, external_id=external_id)
    if conversation is None:
        return []
    rows = await session.execute(
        select(Message.data)
        .where(Message.conversation_id == conversation.id, Message.direction == "out")
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return rows.scalars().all()


async def add_message(
    session: AsyncSession,
    *,
    conversation_id: int,
    direction: str,
    kind: str,
    text: str | None,
    payload: str | None = None,
    data: dict[str, Any] | None = None,
    intent: str | None = None,
    confidence: float | None = None,
    platform_message_id: str | None = None,
    created_at: datetime | None = None,
) -> Message:
    """Append one transcript line."""
    message = Message(
        **message_row(
            conversation_id=conversation_id,
            direction=direction,
            kind=kind,
            text=text,
            payload=payload,
            data=data,
            intent=intent,
            confidence=confidence,
            platform_message_id=platform_message_id,
            created_at=created_at,
        )
    )
    session.add(message)
    await session.flush()
    return message


def message_row(
    *,
    conversation_id: int,
    direction: str,
    kind: str,
    text: str | None,
    payload: str | None = None,
    data: dict[str, Any] | None = None,
    intent: str | None = None,
    confidence: float | None = None,
    platform_message_id: str | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """One transcript line's column values (``add_message`` stores one; a turn stores several at once)."""
    return {
        "conversation_id": conversation_id,
        "direction": direction,
        "kind": kind,
        "text": text,
        "payload": payload,
        "data": data or {},
        "intent": intent,
        "confidence": confidence,
        "platform_message_id": platform_message_id,
        "created_at": created_at or utcnow(),
    }


async def transcript(session: AsyncSession, *, conversation_id: int, limit: int = 500) -> Sequence[Message]:
    """The last ``limit`` transcript lines of a conversation, oldest first."""
    stmt = (
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    rows = (await session.execute(stmt)).scalars().all()
    return list(reversed(rows))


async def events_after(
    session: AsyncSession,
    *,
    conversation_id: int,
    after: int,
    kinds: Sequence[str],
    limit: int = 100,
) -> Sequence[Message]:
    """Outbound transcript lines of the given kinds with id > ``after``, oldest first."""
    stmt = (
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == "out",
            Message.kind.in_(kinds),
            Message.id > after,
        )
        .order_by(Message.id)
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def count_messages(session: AsyncSession, *, conversation_id: int) -> int:
    """How many transcript lines a conversation has."""
    stmt = select(func.count()).select_from(Message).where(Message.conversation_id == conversation_id)
    return int((await session.execute(stmt)).scalar_one())


async def enqueue_outbox(
    session: AsyncSession,
    *,
    resident: Resident,
    kind: str,
    body: dict[str, Any],
    idempotency_key: str,
    urgent: bool = False,
    not_before: datetime | None = None,
) -> bool:
    """Queue one pushed message; False when a row with the same idempotency key exists already."""
    stmt = (
        _insert(session, OutboxMessage)
        .values(
            resident_id=resident.id,
            channel=resident.channel,
            chat_id=resident.external_id,
            kind=kind,
            body=body,
            idempotency_key=idempotency_key,
            status="pending",
            urgent=urgent,
            attempts=0,
            not_before=not_before or utcnow(),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def touch_inbound(session: AsyncSession, *, resident_id: int, at: datetime) -> None:
    """Remember when the resident last wrote (WhatsApp's 24-hour window starts there)."""
    await session.execute(update(Resident).where(Resident.id == resident_id).values(last_inbound_at=at))


async def subscribe(
    session: AsyncSession, *, resident_id: int, topic: str, ref: str, last_status: str | None = None
) -> None:
    """Subscribe a resident to a permit, complaint or announcements (re-activates an old one).

    Subscribing is asking for messages again: it ends an earlier opt-out (``residents.opted_out``).
    """
    await session.execute(update(Resident).where(Resident.id == resident_id).values(opted_out=False))
    existing = (
        await session.execute(
            select(Subscription).where(
                Subscription.resident_id == resident_id, Subscription.topic == topic, Subscription.ref == ref
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        existing.active = True
        if last_status is not None:
            existing.last_status = last_status
        return
    session.add(
        Subscription(
            resident_id=resident_id,
            topic=topic,
            ref=ref,
            active=True,
            last_status=last_status,
            created_at=utcnow(),
        )
    )
    await session.flush()


async def unsubscribe(
    session: AsyncSession, *, resident_id: int, topic: str | None = None, ref: str | None = None
) -> int:
    """Deactivate a resident's subscriptions (all, one topic, or one item); returns how many.

    Stopping all of them ("BERHENTI" / "STOP") is an opt-out: ``residents.opted_out`` is set, and the
    outbox dispatcher sends that resident no notification or announcement any more, even one queued.
    """
    if topic is None and ref is None:
        await session.execute(update(Resident).where(Resident.id == resident_id).values(opted_out=True))
    stmt = update(Subscription).where(Subscription.resident_id == resident_id, Subscription.active.is_(True))
    if topic is not None:
        stmt = stmt.where(Subscription.topic == topic)
    if ref is not None:
        stmt = stmt.where(Subscription.ref == ref)
    result = await session.execute(stmt.values(active=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def subscriptions_of(session: AsyncSession, *, resident_id: int) -> Sequence[Subscription]:
    """A resident's active subscriptions."""
    stmt = select(Subscription).where(Subscription.resident_id == resident_id, Subscription.active.is_(True))
    return (await session.execute(stmt.order_by(Subscription.id))).scalars().all()


async def subscribers(session: AsyncSession, *, topic: str, ref: str) -> Sequence[Subscription]:
    """Active subscriptions to one permit/complaint (with their residents)."""
    stmt = select(Subscription).where(
        Subscription.topic == topic, Subscription.ref == ref, Subscription.active.is_(True)
    )
    return (await session.execute(stmt.order_by(Subscription.id))).scalars().all()
