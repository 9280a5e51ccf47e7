"""Data access for residents' rights and retention (UU No. 27/2022): what is stored about a resident,
erasing it, and purging what is older than the retention period.

Keyword-only functions taking the caller's session. Policy (what to keep, how to mask) lives above:
``flows/privacy.py`` (erasure, "data saya") and ``bot/notifications/retention.py`` (the purge job) pass in the
masking function and the statuses that count as closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.backend_models import ComplaintEvent, ComplaintRecord, ComplaintSupporter
from storage.models import Conversation, Message, OutboxMessage, ProcessedMessage, Resident, Subscription
from storage.staff_models import AuditEntry, Handoff
from storage.staff_repository import BOT_STATUS
from storage.whatsapp_repository import WhatsAppOptions

Mask = Callable[[str], str]
ERASED_CHANNEL_PREFIX = "erased:"
ERASED_MARK = "[dihapus]"
PENDING_OUTBOX = "pending"
FINISHED_OUTBOX = ("sent", "dead", "skipped")
IDENTIFYING_ENTITIES = ("nik", "phone")
MIN_IDENTIFIER_DIGITS = 6


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


def erased_external_id(resident_id: int) -> str:
    """The identity an erased resident row keeps: its own row id, which says nothing about the chat.

    Not a digest of the chat id: a phone number's digest is reversed by trying every number, and
    nothing needs to find the erased row from the chat again (the same chat writing later is a new
    resident, and may be erased again).
    """
    return f"{ERASED_CHANNEL_PREFIX}{resident_id}"


_SEPARATORS = r"[\s.\-()/\u200b-\u200d\u2060\ufeff]*"


class Redactor:
    """Masks personal data in kept text and redacts the erased resident's own identifiers, however
    their digits are separated (``6171.0101…``, ``0812-5678-0003``, ``+62 812 5678 0003``)."""

    def __init__(self, mask: Mask, *, chat_id: str, values: Iterable[str]) -> None:
        self._mask = mask
        self._texts = [chat_id] if chat_id else []
        patterns: list[str] = []
        for value in {chat_id, *values}:
            digits = re.sub(r"\D", "", value)
            if len(digits) < MIN_IDENTIFIER_DIGITS:
                continue
            national = digits[2:] if digits.startswith("62") else digits.lstrip("0")
            if national != digits:  # a phone number: +62…, 62…, 0… all name it
                core = _SEPARATORS.join(national)
                patterns.append(rf"(?:(?:\+{_SEPARATORS})?6{_SEPARATORS}2|0)?{_SEPARATORS}{core}")
            else:
                patterns.append(_SEPARATORS.join(digits))
        self._digits = (
            re.compile("(?<!\\d)(?:" + "|".join(sorted(patterns, key=len, reverse=True)) + ")(?!\\d)")
            if patterns
            else None
        )

    def text(self, text: str) -> str:
        """``text`` with the resident's identifiers replaced by :data:`ERASED_MARK`, the rest masked."""
        if not text:
            return text
        for value in self._texts:
            text = text.replace(value, ERASED_MARK)
        if self._digits is not None:
            text = self._digits.sub(ERASED_MARK, text)
        return self._mask(text)

    def value(self, value: Any) -> Any:
        """A JSON value with every string in it redacted (keys kept)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        return value


async def erase_resident(
    session: AsyncSession, *, resident_id: int, reporter: str, mask: Mask, at: datetime
) -> Erasure:
    """Delete a resident's transcript, subscriptions, queued messages and options; anonymise the rest.

    The resident row stays as an anonymous shell (its chat id replaced by :func:`erased_external_id`,
    name, source and consent cleared, ``erased_at`` set) so this turn can finish; the next message
    from that chat starts a new, empty resident. Complaints keep what the case needs (ticket,
    category, location, status history): the reporter link is cut and NIK/phones in their text, their
    history and the audit log about them are masked, the resident's own numbers redacted. An open
    handoff is closed. The chat's platform dedupe records are deleted (they name the chat): a late
    retry of an older message is then a new resident's first message. Every text column is covered
    here or exempted in ``storage.erasure_coverage`` (THE ERASURE COVERAGE RULE).
    """
    resident = await session.get(Resident, resident_id)
    if resident is None:
        return Erasure(0, 0, 0, 0)
    erased_id = erased_external_id(resident_id)
    conversation_ids = select(Conversation.id).where(Conversation.resident_id == resident_id)
    redact = Redactor(
        mask, chat_id=resident.external_id, values=await _identifiers(session, conversation_ids)
    )
    messages = await session.execute(
        delete(Message)
        .where(Message.conversation_id.in_(conversation_ids))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(ProcessedMessage)
        .where(
            or_(
                ProcessedMessage.conversation_id.in_(conversation_ids),
                (ProcessedMessage.channel == resident.channel)
                & (ProcessedMessage.chat_id == resident.external_id),
            )
        )
        .execution_options(synchronize_session=False)
    )
    subscriptions = await session.execute(delete(Subscription).where(Subscription.resident_id == resident_id))
    outbox = await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.resident_id == resident_id, OutboxMessage.status == PENDING_OUTBOX
        )
    )
    kept_outbox = list(
        (await session.execute(select(OutboxMessage.id).where(OutboxMessage.resident_id == resident_id)))
        .scalars()
        .all()
    )
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.resident_id == resident_id)
        .values(
            body={},
            chat_id=erased_id,
            last_error=None,
            idempotency_key=literal(ERASED_CHANNEL_PREFIX, Text) + cast(OutboxMessage.id, Text),
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(WhatsAppOptions).where(WhatsAppOptions.resident_id == resident_id))
    handoff_ids = await _forget_handoffs(session, conversation_ids=conversation_ids, at=at)
    tickets, complaints = await _anonymise_complaints(session, reporter=reporter, redact=redact, at=at)
    await session.execute(delete(ComplaintSupporter).where(ComplaintSupporter.reporter == reporter))
    await _redact_audit(
        session,
        targets=[f"handoff:{i}" for i in handoff_ids]
        + [f"complaint:{t}" for t in tickets]
        + [f"outbox:{i}" for i in kept_outbox],
        redact=redact,
    )
    conversation = (
        await session.execute(select(Conversation).where(Conversation.resident_id == resident_id))
    ).scalar_one_or_none()
    if conversation is not None:
        conversation.state = None
        conversation.slots = {}
        conversation.status = BOT_STATUS
    resident.external_id = erased_id
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


async def _identifiers(session: AsyncSession, conversation_ids: Any) -> set[str]:
    """The NIKs and phone numbers the NLU found in the resident's messages (to redact them elsewhere)."""
    found: set[str] = set()
    rows: Iterable[dict[str, Any] | None] = (
        await session.execute(
            select(Message.data).where(
                Message.conversation_id.in_(conversation_ids), cast(Message.data, Text).like('%"entities"%')
            )
        )
    ).scalars()
    for data in rows:
        for entity in (data or {}).get("entities") or ():
            if isinstance(entity, dict) and entity.get("entity") in IDENTIFYING_ENTITIES:
                found.add(str(entity.get("value") or ""))
    return found


async def _forget_handoffs(session: AsyncSession, *, conversation_ids: Any, at: datetime) -> list[int]:
    """Empty the context and notes of the conversation's handoffs, close an open one; their ids."""
    rows = (
        (await session.execute(select(Handoff).where(Handoff.conversation_id.in_(conversation_ids))))
        .scalars()
        .all()
    )
    for handoff in rows:
        handoff.context = {}
        handoff.close_note = None
        if handoff.closed_at is None:
            handoff.closed_at, handoff.closed_by = at, "resident"
    return [handoff.id for handoff in rows]


async def _redact_audit(session: AsyncSession, *, targets: list[str], redact: Redactor) -> None:
    """Mask and redact the details of the audit lines about the resident's handoffs and complaints."""
    if not targets:
        return
    rows = (await session.execute(select(AuditEntry).where(AuditEntry.target.in_(targets)))).scalars().all()
    for entry in rows:
        details = redact.value(entry.details or {})
        if details != entry.details:
            entry.details = details


async def _anonymise_complaints(
    session: AsyncSession, *, reporter: str, redact: Redactor, at: datetime
) -> tuple[list[str], int]:
    """Cut the reporter link of the resident's complaints and redact their texts and history."""
    rows = (
        (await session.execute(select(ComplaintRecord).where(ComplaintRecord.reporter == reporter)))
        .scalars()
        .all()
    )
    for record in rows:
        record.reporter = None
        record.description = redact.text(record.description or "")
        record.address = redact.text(record.address) if record.address else None
        record.note = redact.text(record.note) if record.note else None
        record.last_error = redact.text(record.last_error) if record.last_error else None
        record.updated_at = at
    if rows:
        events = (
            (
                await session.execute(
                    select(ComplaintEvent).where(
                        ComplaintEvent.complaint_id.in_([r.id for r in rows]),
                        ComplaintEvent.note.is_not(None),
                    )
                )
            )
            .scalars()
            .all()
        )
        for event in events:
            event.note = redact.text(event.note or "")
    refs = [ref for record in rows for ref in (record.ticket, record.local_ref) if ref]
    return refs, len(rows)


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
