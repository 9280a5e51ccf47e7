"""Data access for residents' rights and retention (UU No. 27/2022): what is stored about a resident,
erasing it, and purging what is older than the retention period.

Keyword-only functions taking the caller's session. Policy (what to keep, how to mask) lives above:
``flows/privacy.py`` (erasure, "data saya") and ``bot/notifications/retention.py`` (the purge job) pass in the
masking function and the statuses that count as closed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.backend_models import ComplaintEvent, ComplaintRecord, ComplaintSupporter
from storage.models import Conversation, Message, OutboxMessage, ProcessedMessage, Resident, Subscription
from storage.staff_models import Handoff
from storage.whatsapp_repository import WhatsAppOptions

Mask = Callable[[str], str]
ERASED_CHANNEL_PREFIX = "erased:"
PENDING_OUTBOX = "pending"
FINISHED_OUTBOX = ("sent", "dead", "skipped")


@dataclass(frozen=True, slots=True)
class ComplaintLine:
    """One of the resident's complaints as "data saya" lists it."""

    ref: str
    category: str
    status: str


@dataclass(frozen=True, slots=True)
class StoredData:
    """What is stored about one resident (for "data saya")."""

    channel: str
    language: str
    source: str | None
    consent_at: datetime | None
    created_at: datetime
    subscriptions: tuple[tuple[str, str], ...]
    complaints: tuple[ComplaintLine, ...]
    messages: int


@dataclass(frozen=True, slots=True)
class Erasure:
    """What erasing one resident removed or anonymised."""

    messages: int
    subscriptions: int
    outbox: int
    complaints: int


@dataclass(frozen=True, slots=True)
class Purge:
    """What one retention run removed or masked."""

    messages: int = 0
    processed: int = 0
    outbox: int = 0
    conversations: int = 0
    complaints: int = 0
    handoffs: int = 0
    media: int = 0


async def stored_data(session: AsyncSession, *, resident_id: int, reporter: str) -> StoredData | None:
    """Everything "data saya" shows about a resident; None when there is no such resident."""
    resident = await session.get(Resident, resident_id)
    if resident is None:
        return None
    subs = (
        await session.execute(
            select(Subscription.topic, Subscription.ref)
            .where(Subscription.resident_id == resident_id, Subscription.active.is_(True))
            .order_by(Subscription.id)
        )
    ).all()
    complaints = (
        await session.execute(
            select(
                ComplaintRecord.ticket,
                ComplaintRecord.local_ref,
                ComplaintRecord.category,
                ComplaintRecord.status,
            )
            .where(ComplaintRecord.reporter == reporter)
            .order_by(ComplaintRecord.id)
        )
    ).all()
    count = (
        await session.execute(
            select(func.count())
            .select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.resident_id == resident_id)
        )
    ).scalar_one()
    return StoredData(
        channel=resident.channel,
        language=resident.language,
        source=resident.source,
        consent_at=resident.consent_at,
        created_at=resident.created_at,
        subscriptions=tuple((str(t), str(r)) for t, r in subs),
        complaints=tuple(
            ComplaintLine(ticket or local_ref, category, status)
            for ticket, local_ref, category, status in complaints
        ),
        messages=int(count),
    )


def erased_external_id(channel: str, external_id: str) -> str:
    """The anonymous identity an erased resident row keeps (not reversible to the chat id)."""
    digest = hashlib.sha256(f"{channel}:{external_id}".encode()).hexdigest()[:24]
    return f"{ERASED_CHANNEL_PREFIX}{digest}"


async def erase_resident(
    session: AsyncSession, *, resident_id: int, reporter: str, mask: Mask, at: datetime
) -> Erasure:
    """Delete a resident's transcript, subscriptions, queued messages and options; anonymise the rest.

    The resident row stays as an anonymous shell (its chat id replaced by a one-way digest, name,
    source and consent cleared, ``erased_at`` set) so this turn can finish; the next message from
    that chat starts a new, empty resident. Complaints keep what the case needs (ticket, category,
    location, status history): the reporter link is cut and NIK/phones in the text are masked.
    Platform dedupe records keep their ids (a retry must stay a retry) but lose their replies.
    """
    resident = await session.get(Resident, resident_id)
    if resident is None:
        return Erasure(0, 0, 0, 0)
    conversation_ids = select(Conversation.id).where(Conversation.resident_id == resident_id)
    messages = await session.execute(
        delete(Message)
        .where(Message.conversation_id.in_(conversation_ids))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(ProcessedMessage)
        .where(ProcessedMessage.conversation_id.in_(conversation_ids))
        .values(response={}, conversation_id=None)
        .execution_options(synchronize_session=False)
    )
    subscriptions = await session.execute(delete(Subscription).where(Subscription.resident_id == resident_id))
    outbox = await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.resident_id == resident_id, OutboxMessage.status == PENDING_OUTBOX
        )
    )
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.resident_id == resident_id)
        .values(body={}, chat_id=erased_external_id(resident.channel, resident.external_id))
    )
    await session.execute(delete(WhatsAppOptions).where(WhatsAppOptions.resident_id == resident_id))
    await session.execute(
        update(Handoff).where(Handoff.conversation_id.in_(conversation_ids)).values(context={})
    )
    complaints = await _anonymise_complaints(session, reporter=reporter, mask=mask, at=at)
    await session.execute(delete(ComplaintSupporter).where(ComplaintSupporter.reporter == reporter))
    conversation = (
        await session.execute(select(Conversation).where(Conversation.resident_id == resident_id))
    ).scalar_one_or_none()
    if conversation is not None:
        conversation.state = None
        conversation.slots = {}
    resident.external_id = erased_external_id(resident.channel, resident.external_id)
    resident.display_name = None
    resident.source = None
    resident.consent_at = None
    resident.last_inbound_at = None
    resident.erased_at = at
    await session.flush()
    return Erasure(
        messages=int(messages.rowcount),  # type: ignore[attr-defined]
        subscriptions=int(subscriptions.rowcount),  # type: ignore[attr-defined]
        outbox=int(outbox.rowcount),  # type: ignore[attr-defined]
        complaints=complaints,
    )


async def _anonymise_complaints(session: AsyncSession, *, reporter: str, mask: Mask, at: datetime) -> int:
    rows = (
        (await session.execute(select(ComplaintRecord).where(ComplaintRecord.reporter == reporter)))
        .scalars()
        .all()
    )
    for record in rows:
        record.reporter = None
        record.description = mask(record.description or "")
        record.note = mask(record.note) if record.note else None
        record.updated_at = at
    return len(rows)


async def purge_transcripts(session: AsyncSession, *, before: datetime) -> tuple[int, int]:
    """Delete transcript lines and platform dedupe records older than ``before``; returns both counts."""
    messages = await session.execute(delete(Message).where(Message.created_at < before))
    processed = await session.execute(delete(ProcessedMessage).where(ProcessedMessage.created_at < before))
    return int(messages.rowcount), int(processed.rowcount)  # type: ignore[attr-defined]


async def purge_outbox(session: AsyncSession, *, before: datetime, now: datetime) -> int:
    """Delete finished outbox rows (sent, dead, skipped; not claimed) created before ``before``."""
    result = await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.created_at < before,
            OutboxMessage.status.in_(FINISHED_OUTBOX),
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def forget_idle_conversations(session: AsyncSession, *, before: datetime, busy_status: str) -> int:
    """Clear the state and slots of conversations untouched since ``before`` (not those with staff)."""
    result = await session.execute(
        update(Conversation)
        .where(Conversation.updated_at < before, Conversation.status != busy_status)
        .values(state=None, slots={})
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def mask_closed_complaints(
    session: AsyncSession, *, before: datetime, closed: Collection[str], mask: Mask
) -> int:
    """Mask NIK/phones in complaints closed before ``before`` and cut their reporter link.

    Ticket, category, location and the status history stay: the case may still be looked up.
    """
    rows = (
        (
            await session.execute(
                select(ComplaintRecord).where(
                    ComplaintRecord.status.in_(list(closed)), ComplaintRecord.updated_at < before
                )
            )
        )
        .scalars()
        .all()
    )
    changed = 0
    for record in rows:
        description = mask(record.description or "")
        note = mask(record.note) if record.note else None
        if description != record.description or note != record.note or record.reporter is not None:
            record.description, record.note, record.reporter = description, note, None
            changed += 1
    events = (
        (
            await session.execute(
                select(ComplaintEvent)
                .join(ComplaintRecord, ComplaintRecord.id == ComplaintEvent.complaint_id)
                .where(
                    ComplaintRecord.status.in_(list(closed)),
                    ComplaintRecord.updated_at < before,
                    ComplaintEvent.note.is_not(None),
                )
            )
        )
        .scalars()
        .all()
    )
    for event in events:
        event.note = mask(event.note or "")
    await session.execute(
        delete(ComplaintSupporter).where(
            ComplaintSupporter.complaint_id.in_(
                select(ComplaintRecord.id).where(
                    ComplaintRecord.status.in_(list(closed)), ComplaintRecord.updated_at < before
                )
            )
        )
    )
    return changed


async def forget_closed_handoffs(session: AsyncSession, *, before: datetime, mask: Mask) -> int:
    """Empty the kept context of handoffs closed before ``before`` and mask their closing notes."""
    rows = (
        (
            await session.execute(
                select(Handoff).where(Handoff.closed_at.is_not(None), Handoff.closed_at < before)
            )
        )
        .scalars()
        .all()
    )
    changed = 0
    for handoff in rows:
        note = mask(handoff.close_note) if handoff.close_note else None
        if handoff.context or note != handoff.close_note:
            handoff.context, handoff.close_note = {}, note
            changed += 1
    return changed


async def referenced_media_keys(
    session: AsyncSession, *, open_statuses: Collection[str], changed_since: datetime
) -> set[str]:
    """Media keys referenced by a transcript line, or by a complaint that is open or changed since."""
    keys: set[str] = set()
    data_rows: Iterable[dict[str, Any] | None] = (
        await session.execute(select(Message.data).where(cast(Message.data, Text).like('%"media"%')))
    ).scalars()
    for data in data_rows:
        for item in (data or {}).get("media") or ():
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                keys.add(item["key"])
    complaint_rows: Iterable[list[Any] | None] = (
        await session.execute(
            select(ComplaintRecord.media_keys).where(
                or_(
                    ComplaintRecord.status.in_(list(open_statuses)),
                    ComplaintRecord.updated_at >= changed_since,
                )
            )
        )
    ).scalars()
    for media_keys in complaint_rows:
        keys.update(k for k in media_keys or () if isinstance(k, str))
    return keys
