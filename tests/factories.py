"""Builders for test inputs."""

from __future__ import annotations

import itertools
from typing import Any

from flows.messages import Channel, IncomingMessage

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
