"""Background jobs: poll the back ends for changes, sweep the outbox, file complaints that waited.

They run on the scheduler of the leading process (``bot.notifications.scheduler``: APScheduler,
persisted job store).
A job run is an edge: its errors are logged with ``exc_info`` and the next run tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.notifications.changes import ChangeDetector
from bot.privacy import mask_id
from flows.messages import Channel, Reply
from flows.texts import Texts
from integrations.base import Filing, resident_id_of
from integrations.desk import StoringComplaintDesk, TicketHook
from storage import repositories as repo
from storage.models import OutboxMessage, Subscription
from storage.outbox import OutboxStatus
from storage.types import utcnow

logger = logging.getLogger(__name__)

NOTIFICATION_KIND = "notification"


def ticket_key(local_ref: str) -> str:
    """The outbox idempotency key of the "your ticket number is …" push for one report."""
    return f"complaint:{local_ref}:ticket"


def ticket_notifier(texts: Texts) -> TicketHook:
    """A ``submit_pending`` hook queueing the resident's push in the transaction that records the ticket."""

    async def notify(session: AsyncSession, filing: Filing) -> None:
        """Queue ``backend.ticket_assigned`` for the reporter; move their subscription to the ticket."""
        complaint = filing.complaint
        if complaint is None or filing.ticket is None:
            return
        resident_id = resident_id_of(complaint.reporter)
        resident = (
            await repo.get_resident(session, resident_id=resident_id) if resident_id is not None else None
        )
        if resident is None or resident.erased_at is not None:
            logger.info("complaint %s filed as %s; no resident to tell", filing.local_ref, filing.ticket)
            return
        reply = Reply(
            texts.render(
                resident.language, "backend.ticket_assigned", ticket=filing.ticket, ref=filing.local_ref
            )
        )
        body = {**reply.to_dict(), "topic": "complaint", "ref": filing.ticket}
        queued = await repo.enqueue_outbox(
            session,
            resident=resident,
            kind=NOTIFICATION_KIND,
            body=body,
            idempotency_key=ticket_key(filing.local_ref),
        )
        if queued and resident.channel == Channel.WEBCHAT.value:
            # The events feed is the web chat's delivery: the line and the "sent" mark are one commit.
            conversation = await repo.get_or_create_conversation(session, resident=resident)
            await repo.add_message(
                session,
                conversation_id=conversation.id,
                direction="out",
                kind="push",
                text=reply.text,
                data={**reply.to_dict(), "outbox_key": ticket_key(filing.local_ref)},
            )
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.idempotency_key == ticket_key(filing.local_ref))
                .values(status=OutboxStatus.SENT, delivery_status="delivered", sent_at=utcnow(), attempts=1)
            )
        # A resident subscribed while the report was pending follows it by its ticket from now on.
        await session.execute(
            update(Subscription)
            .where(
                Subscription.resident_id == resident.id,
                Subscription.topic == "complaint",
                Subscription.ref == filing.local_ref,
            )
            .values(ref=filing.ticket)
        )
        logger.info(
            "ticket %s queued for resident channel=%s chat=%s",
            filing.ticket,
            resident.channel,
            mask_id(resident.external_id),
        )

    return notify


async def submit_pending_complaints(desk: StoringComplaintDesk, texts: Texts) -> int:
    """File every due pending complaint; returns how many got their ticket in this run."""
    filings = await desk.submit_pending(on_ticket=ticket_notifier(texts))
    return len(filings)


async def poll_permits(detector: ChangeDetector, wake: Callable[[], None]) -> int:
    """Queue notifications for permits that moved; wake the dispatcher when some were queued."""
    result = await detector.poll_permits()
    if result.queued:
        wake()
    return result.queued


async def poll_complaints(detector: ChangeDetector, wake: Callable[[], None]) -> int:
    """Queue notifications for complaints that moved; wake the dispatcher when some were queued."""
    result = await detector.poll_complaints()
    if result.queued:
        wake()
    return result.queued


async def dispatch_outbox(wake: Callable[[], None]) -> None:
    """The outbox sweep: rows queued by other processes (CLI, other workers) and lapsed leases."""
    wake()


async def submit_pending(desk: StoringComplaintDesk, texts: Texts, wake: Callable[[], None]) -> int:
    """File the complaints that waited for their back end; their ticket pushes go out at once."""
    filed = await submit_pending_complaints(desk, texts)
    if filed:
        wake()
    return filed
