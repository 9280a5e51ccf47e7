"""Background jobs: file complaints that waited for their back end, and tell residents the ticket number.

For now each job is a loop started from ``Runtime.start`` (``rt.spawn``); the notifications work moves
them onto APScheduler. A job run is an edge: its errors are logged with ``exc_info`` and the loop goes on.
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
from storage.models import Subscription

if TYPE_CHECKING:
    from bot.runtime import Runtime

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
            conversation = await repo.get_or_create_conversation(session, resident=resident)
            await repo.add_message(
                session,
                conversation_id=conversation.id,
                direction="out",
                kind="push",
                text=reply.text,
                data=reply.to_dict(),
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


def start_backend_jobs(rt: Runtime) -> None:
    """Start the back ends' periodic jobs on the runtime (cancelled when it closes)."""
    interval = rt.settings.complaints.submit_interval_seconds
    rt.spawn(
        run_every(interval, lambda: submit_pending_complaints(rt), name="submit_pending"),
        name="submit_pending",
    )
