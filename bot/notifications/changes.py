"""Status notifications: back-end changes become outbox rows in the transaction that stores the cursor.

Change detection (:class:`ChangeDetector`) asks a back end for what changed since the stored cursor,
then in ONE transaction: for every active subscriber whose ``last_status`` differs, renders the message
in the resident's language, queues it (idempotency key ``topic:ref:status:resident``), updates
``last_status``, and stores the new cursor. A crash before the commit loses nothing (the same changes
are fetched again from the old cursor); a crash after it repeats nothing (the cursor moved, and the
idempotency key refuses a second row anyway).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.messages import Button, Channel, Reply
from flows.texts import MissingText, Texts
from integrations.base import (
    Changes,
    Complaint,
    ComplaintBackend,
    IntegrationError,
    Permit,
    PermitBackend,
)
from storage import outbox as outbox_repo
from storage import repositories as repo
from storage.db import Database, advisory_xact_lock
from storage.models import Subscription

logger = logging.getLogger(__name__)

NOTIFICATION = "notification"
ANNOUNCEMENT = "announcement"
# Kinds that quiet hours hold (unless urgent) and that an opted-out resident no longer gets. Staff
# replies and the handoff's closing messages are conversation, not notifications: they always go.
HELD_KINDS = frozenset({NOTIFICATION, ANNOUNCEMENT})
PERMITS_SOURCE = "permits"
COMPLAINTS_SOURCE = "complaints"
PERMIT_TOPIC = "permit"
COMPLAINT_TOPIC = "complaint"
ANNOUNCEMENTS_TOPIC = "announcements"
ALL_REFS = "*"
SEGMENTS = ("subscribers", "all")
PUSH_CHANNELS = (Channel.TELEGRAM.value, Channel.WHATSAPP.value, Channel.WEBCHAT.value)
RECONCILE_LIMIT = 1000
BROADCAST_CHUNK = 1000
MAX_BROADCAST_CHARS = 1000
TEMPLATE_VARIABLE_MAX = 900


def change_key(topic: str, ref: str, status: str, resident_id: int) -> str:
    """The idempotency key of one change for one resident: (entity, status, resident)."""
    return f"{topic}:{ref}:{status}:{resident_id}"


def broadcast_key_prefix(broadcast_id: int) -> str:
    """The idempotency-key prefix shared by every row of one broadcast."""
    return f"broadcast:{broadcast_id}:"


@dataclass(frozen=True, slots=True)
class Notice:
    """One rendered notification: the message, and the WhatsApp template for outside the 24-hour window."""

    reply: Reply
    template: str
    variables: dict[str, str]

    def body(self, **extra: Any) -> dict[str, Any]:
        """The outbox ``body``: the reply plus what sending needs (template, variables, …)."""
        return {
            **self.reply.to_dict(),
            "template": self.template,
            "variables": dict(self.variables),
            **extra,
        }


def _with_footer(texts: Texts, lang: str, main: str, note: str | None) -> str:
    lines = [main]
    if note:
        lines.append(texts.render(lang, "notify.note", note=note.strip()[:300]))
    lines.append(texts.render(lang, "notify.stop_hint"))
    return "\n".join(lines)


def permit_notice(texts: Texts, lang: str, permit: Permit) -> Notice | None:
    """What a subscriber of ``permit`` is told about its current stage (None: nothing to say)."""
    stage = permit.stage.value
    try:
        kind_label = texts.render(lang, f"notify.permit_type.{permit.permit_type}")
    except MissingText:
        kind_label = texts.render(lang, "notify.permit_type.other")
    try:
        main = texts.render(lang, f"notify.permit.{stage}", permit=kind_label, number=permit.number)
        label = texts.render(lang, f"notify.stage_label.{stage}")
    except MissingText:
        return None
    payload = "/permit_status" + json.dumps({"permit_number": permit.number})
    reply = Reply(
        _with_footer(texts, lang, main, permit.note),
        (Button(texts.render(lang, "notify.button_details"), payload),),
    )
    return Notice(reply, "permit_update", {"1": permit.number, "2": label})


def complaint_notice(texts: Texts, lang: str, complaint: Complaint) -> Notice | None:
    """What a subscriber of ``complaint`` is told about its current status (None: nothing to say)."""
    status = complaint.status.value
    agency = complaint.agency or texts.render(lang, "notify.agency_default")
    try:
        main = texts.render(lang, f"notify.complaint.{status}", ticket=complaint.ticket, agency=agency)
        label = texts.render(lang, f"notify.status_label.{status}")
    except MissingText:
        return None
    payload = "/complaint_status" + json.dumps({"ticket_number": complaint.ticket})
    reply = Reply(
        _with_footer(texts, lang, main, complaint.note),
        (Button(texts.render(lang, "notify.button_details"), payload),),
    )
    return Notice(reply, "complaint_update", {"1": complaint.ticket, "2": label})


def announcement_notice(texts: Texts, lang: str, text: str) -> Notice:
    """An announcement with its header and the stop hint, in ``lang``."""
    main = texts.render(lang, "notify.announcement", text=text.strip())
    return Notice(
        Reply(_with_footer(texts, lang, main, None)),
        "announcement",
        {"1": text.strip()[:TEMPLATE_VARIABLE_MAX]},
    )


async def queue_change(
    session: AsyncSession,
    *,
    topic: str,
    ref: str,
    status: str,
    render: Callable[[str], Notice | None],
    at: datetime,
) -> int:
    """Queue one change for every active subscriber not yet told about ``status``, due at ``at`` (the
    caller's clock, which the outbox dispatcher reads too); returns rows queued.

    Runs in the caller's transaction (the one that stores the cursor). ``last_status`` moves for every
    subscriber, so a later poll does not tell them again.
    """
    queued = 0
    for subscription in await repo.subscribers(session, topic=topic, ref=ref):
        if subscription.last_status == status:
            continue
        subscription.last_status = status
        resident = await repo.get_resident(session, resident_id=subscription.resident_id)
        if resident is None or resident.erased_at is not None or resident.opted_out:
            continue
        notice = render(resident.language)
        if notice is None:
            continue
        body = notice.body(topic=topic, ref=ref, status=status, subscription=True)
        queued += await repo.enqueue_outbox(
            session,
            resident=resident,
            kind=NOTIFICATION,
            body=body,
            idempotency_key=change_key(topic, ref, status, resident.id),
            not_before=at,
        )
    return queued


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of a back end did."""

    source: str
    changes: int
    queued: int
    cursor: str | None


class ChangeDetector:
    """Polls the permit and complaint back ends and queues notifications for their subscribers."""

    def __init__(
        self,
        *,
        db: Database,
        texts: Texts,
        permits: PermitBackend,
        complaints: ComplaintBackend,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.texts = texts
        self.permits = permits
        self.complaints = complaints
        self._clock = clock or (lambda: datetime.now(UTC))

    async def poll_permits(self) -> PollResult:
        """Queue notifications for permits that changed since the stored cursor."""

        async def queue(session: AsyncSession, permit: Permit) -> int:
            return await queue_change(
                session,
                topic=PERMIT_TOPIC,
                ref=permit.number,
                status=permit.stage.value,
                render=lambda lang: permit_notice(self.texts, lang, permit),
                at=self._clock(),
            )

        return await self._poll(
            PERMITS_SOURCE, PERMIT_TOPIC, self.permits.changes_since, self.permits.get, queue
        )

    async def poll_complaints(self) -> PollResult:
        """Queue notifications for complaints whose status changed since the stored cursor."""

        async def queue(session: AsyncSession, complaint: Complaint) -> int:
            return await queue_change(
                session,
                topic=COMPLAINT_TOPIC,
                ref=complaint.ticket,
                status=complaint.status.value,
                render=lambda lang: complaint_notice(self.texts, lang, complaint),
                at=self._clock(),
            )

        return await self._poll(
            COMPLAINTS_SOURCE, COMPLAINT_TOPIC, self.complaints.changes_since, self.complaints.get, queue
        )

    async def _poll(
        self,
        source: str,
        topic: str,
        fetch: Callable[[str | None], Awaitable[Changes[Any]]],
        get_one: Callable[[str], Awaitable[Any]],
        queue: Callable[[AsyncSession, Any], Awaitable[int]],
    ) -> PollResult:
        async with self.db.session() as session:
            stored = await outbox_repo.get_cursor(session, source=source)
            known, since = stored is not None, stored.cursor if stored is not None else None
        # The back end is asked outside any transaction (it may be slow or down).
        changes = await fetch(since)
        items = list(changes.items)
        if not known:
            # First poll ever: the back end starts "from now"; whatever moved between a subscription
            # and this moment is found by asking for each subscribed item once.
            items += await self._reconcile(topic, get_one)
        async with self.db.session() as session:
            await advisory_xact_lock(session, "notify-cursor", source)
            current = await outbox_repo.get_cursor(session, source=source)
            if (current is not None) != known or (current is not None and current.cursor != since):
                logger.info("poll %s: the cursor moved meanwhile (another poller); skipped", source)
                return PollResult(source, 0, 0, current.cursor if current else None)
            queued = 0
            for item in items:
                queued += await queue(session, item)
            await outbox_repo.store_cursor(
                session, source=source, cursor=changes.cursor, at=self._clock(), changes=len(changes.items)
            )
        if items:
            logger.info("poll %s: %d changes, %d notifications queued", source, len(items), queued)
        return PollResult(source, len(changes.items), queued, changes.cursor)

    async def _reconcile(self, topic: str, get_one: Callable[[str], Awaitable[Any]]) -> list[Any]:
        async with self.db.session() as session:
            stmt = (
                select(Subscription.ref)
                .where(
                    Subscription.topic == topic,
                    Subscription.active.is_(True),
                    Subscription.last_status.is_not(None),
                )
                .distinct()
                .limit(RECONCILE_LIMIT)
            )
            refs = list((await session.execute(stmt)).scalars())
        found: list[Any] = []
        for ref in refs:
            try:
                item = await get_one(ref)
            except IntegrationError:
                logger.warning("reconcile %s %s: back end unavailable", topic, ref, exc_info=True)
                continue
            if item is not None:
                found.append(item)
        return found
