"""Builders for test inputs: messages, chat bodies, complaint reports, stored residents and conversations."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flows.messages import Channel, IncomingMessage
from integrations.base import ComplaintReport, new_local_ref, reporter_ref
from storage import repositories as repo
from storage.models import Conversation, Resident

_ids = itertools.count(1)


def incoming(text: str | None = "halo", *, chat_id: str = "chat-1", **fields: Any) -> IncomingMessage:
    """A web chat message with a fresh platform message id unless one is given."""
    fields.setdefault("message_id", f"m{next(_ids)}")
    return IncomingMessage(
        channel=fields.pop("channel", Channel.WEBCHAT),
        chat_id=chat_id,
        user_id=fields.pop("user_id", chat_id),
        text=text,
        **fields,
    )


def chat_body(text: str | None = "halo", *, session_id: str = "s-1", **fields: Any) -> dict[str, Any]:
    """A ``POST /api/chat`` body."""
    body: dict[str, Any] = {"session_id": session_id, "text": text}
    body.update(fields)
    return body


def report(
    category: str = "road_damage",
    description: str = "Jalan berlubang besar di depan sekolah",
    *,
    resident_id: int = 1,
    **fields: Any,
) -> ComplaintReport:
    """A complaint as a flow files it: our resident's reporter reference, a fresh local ref, a map pin."""
    fields.setdefault("reporter", reporter_ref(resident_id))
    fields.setdefault("local_ref", new_local_ref())
    fields.setdefault("lat", -0.0335)
    fields.setdefault("lon", 109.3356)
    return ComplaintReport(category=category, description=description, **fields)


async def resident(
    session: AsyncSession, external_id: str = "chat-1", *, channel: str = "webchat", **fields: Any
) -> Resident:
    """A stored resident (found again if it exists), with ``fields`` set on it."""
    found = await repo.get_or_create_resident(session, channel=channel, external_id=external_id)
    for name, value in fields.items():
        setattr(found, name, value)
    return found


async def conversation(
    session: AsyncSession, external_id: str = "chat-1", *, channel: str = "webchat", **fields: Any
) -> Conversation:
    """A stored resident's conversation, with ``fields`` set on it."""
    found = await repo.get_or_create_conversation(
        session, resident=await resident(session, external_id, channel=channel)
    )
    for name, value in fields.items():
        setattr(found, name, value)
    return found
