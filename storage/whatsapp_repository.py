"""WhatsApp's own table (the numbered options last shown per chat) and its keyword-only data access.

Also the delivery-status update of outbox rows from Twilio's status callbacks, which knows the order
Twilio's statuses move in (queued → sent → delivered → read; failed and undelivered end a message).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, BigId, OutboxMessage, Resident
from storage.types import utcnow

DELIVERY_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}
DELIVERY_FAILED = frozenset({"failed", "undelivered"})


class WhatsAppOptions(Base):
    """The buttons last shown to a WhatsApp resident as numbered lines, so "2" picks the second.

    Kept in the database (not in memory) so a reply reaching another worker, or arriving after a
    restart, still maps; deleted with the resident (erasure).
    """

    __tablename__ = "whatsapp_options"

    resident_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True
    )
    buttons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    shown_at: Mapped[datetime] = mapped_column(default=utcnow)


async def find_resident(session: AsyncSession, *, channel: str, external_id: str) -> Resident | None:
    """The resident behind ``(channel, external_id)``, if they ever wrote."""
    stmt = select(Resident).where(Resident.channel == channel, Resident.external_id == external_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def remember_options(
    session: AsyncSession, *, resident_id: int, buttons: list[dict[str, str]], at: datetime
) -> None:
    """Store the options just shown to a resident (an empty list forgets the previous ones)."""
    if not buttons:
        await session.execute(delete(WhatsAppOptions).where(WhatsAppOptions.resident_id == resident_id))
        return
    row = await session.get(WhatsAppOptions, resident_id)
    if row is None:
        session.add(WhatsAppOptions(resident_id=resident_id, buttons={"buttons": buttons}, shown_at=at))
    else:
        row.buttons = {"buttons": buttons}
        row.shown_at = at
    await session.flush()


async def shown_options(
    session: AsyncSession, *, channel: str, external_id: str, since: datetime
) -> list[dict[str, str]]:
    """The options shown to ``(channel, external_id)`` at or after ``since`` (empty when none)."""
    stmt = (
        select(WhatsAppOptions)
        .join(Resident, Resident.id == WhatsAppOptions.resident_id)
        .where(
            Resident.channel == channel,
            Resident.external_id == external_id,
            WhatsAppOptions.shown_at >= since,
        )
    )
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        return []
    stored = (row.buttons or {}).get("buttons", [])
    return [b for b in stored if isinstance(b, dict) and "title" in b and "payload" in b]


def delivery_moves_forward(current: str | None, new: str) -> bool:
    """True when ``new`` is later than ``current`` (callbacks arrive out of order; never go back)."""
    if current is None:
        return new in DELIVERY_RANK or new in DELIVERY_FAILED
    if current in DELIVERY_FAILED:
        return False
    if new in DELIVERY_FAILED:
        return current in ("queued", "sent")
    return new in DELIVERY_RANK and DELIVERY_RANK[new] > DELIVERY_RANK.get(current, -1)


async def record_delivery_status(
    session: AsyncSession, *, provider_message_id: str, status: str, error: str | None = None
) -> bool | None:
    """Move the outbox row sent as ``provider_message_id`` to ``status``.

    Returns None when no row has that id, False when the status is older than the stored one
    (ignored), True when it was applied.
    """
    stmt = select(OutboxMessage).where(OutboxMessage.provider_message_id == provider_message_id)
    row = (await session.execute(stmt.limit(1))).scalar_one_or_none()
    if row is None:
        return None
    if not delivery_moves_forward(row.delivery_status, status):
        return False
    row.delivery_status = status
    if error:
        row.last_error = error[:2000]
    return True
