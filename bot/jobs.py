"""Background jobs: poll the back ends for changes, sweep the outbox, file complaints that waited.

They run on the scheduler of the leading process (``bot.scheduler``: APScheduler, persisted job store).
A job run is an edge: its errors are logged with ``exc_info`` and the next run tries again.
:func:`run_every` remains for loops that do not need the scheduler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.privacy import mask_id
from flows.messages import Channel, Reply
from flows.texts import Texts
from integrations.base import Filing, resident_id_of
from integrations.desk import TicketHook
from storage import repositories as repo
from storage.models import OutboxMessage, Subscription
from storage.outbox import OutboxStatus
from storage.types import utcnow

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.scheduler import NotificationScheduler

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


async def submit_pending_complaints(rt: Runtime) -> int:
    """File every due pending complaint; returns how many got their ticket in this run."""
    filings = await rt.backends.complaints.submit_pending(on_ticket=ticket_notifier(rt.texts))
    return len(filings)


async def run_every(interval: float, job: Callable[[], Awaitable[object]], *, name: str) -> None:
    """Run ``job`` now and then every ``interval`` seconds until cancelled; a failed run is logged."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("job %s failed; next run in %.0fs", name, interval)
        await asyncio.sleep(interval)


async def run_job(token: str, name: str) -> None:
    """Run the job ``name`` of the scheduler ``token`` (what the persisted job store refers to)."""
    from bot.scheduler import RUNNERS

    runner = RUNNERS.get(token)
    if runner is None:
        logger.warning("job %s belongs to a scheduler that is not running here; skipped", name)
        return
    await runner(name)


async def poll_permits(scheduler: NotificationScheduler) -> int:
    """Queue notifications for permits that moved; wake the dispatcher when some were queued."""
    result = await scheduler.detector.poll_permits()
    if result.queued:
        scheduler.wake()
    return result.queued


async def poll_complaints(scheduler: NotificationScheduler) -> int:
    """Queue notifications for complaints that moved; wake the dispatcher when some were queued."""
    result = await scheduler.detector.poll_complaints()
    if result.queued:
        scheduler.wake()
    return result.queued


async def dispatch_outbox(scheduler: NotificationScheduler) -> None:
    """The outbox sweep: rows queued by other processes (CLI, other workers) and lapsed leases."""
    scheduler.wake()


async def submit_pending(scheduler: NotificationScheduler) -> int:
    """File the complaints that waited for their back end; their ticket pushes go out at once."""
    filed = await submit_pending_complaints(scheduler.rt)
    if filed:
        scheduler.wake()
    return filed
