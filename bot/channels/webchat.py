"""Web chat channel: the page at ``/``, ``POST /api/chat`` and the pushed-events feed (DESIGN 3.5)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.deps import RuntimeDep
from flows.messages import Channel, ContentKind, IncomingMessage, Location
from storage import repositories as repo

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_TEXT = 10_000
EVENT_KINDS = ("push", "staff")

SessionId = Annotated[str, PathParam(pattern=SESSION_ID_PATTERN, max_length=128)]


class ChatLocation(BaseModel):
    """A point shared from the browser."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class ChatRequest(BaseModel):
    """One message from the web chat page."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    session_id: str = Field(pattern=SESSION_ID_PATTERN, max_length=128)
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    payload: str | None = Field(default=None, max_length=512)
    location: ChatLocation | None = None
    message_id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN, max_length=128)

    @model_validator(mode="after")
    def _something_to_say(self) -> ChatRequest:
        if not ((self.text and self.text.strip()) or self.payload or self.location):
            raise ValueError("send at least one of text, payload or location")
        return self


class ButtonOut(BaseModel):
    """A quick-reply button."""

    title: str
    payload: str


class ReplyOut(BaseModel):
    """One bot message."""

    text: str
    buttons: list[ButtonOut] = []
    venue: dict[str, Any] | None = None
    request_location: bool = False


class ChatResponse(BaseModel):
    """The bot's direct replies to one message."""

    replies: list[ReplyOut]


class EventOut(BaseModel):
    """A message that did not come as a direct reply (staff reply, notification)."""

    id: int
    kind: str
    text: str
    buttons: list[ButtonOut] = []


class EventsResponse(BaseModel):
    """Pushed messages after a given id, oldest first."""

    events: list[EventOut]


def to_incoming(request: ChatRequest) -> IncomingMessage:
    """The internal message for one web chat request."""
    location = Location(request.location.lat, request.location.lon) if request.location else None
    kind = ContentKind.LOCATION if location and not request.text else ContentKind.TEXT
    return IncomingMessage(
        channel=Channel.WEBCHAT,
        chat_id=request.session_id,
        user_id=request.session_id,
        message_id=request.message_id or f"auto-{uuid.uuid4().hex}",
        text=request.text,
        payload=request.payload,
        location=location,
        kind=kind,
    )


def webchat_router() -> APIRouter:
    """Routes of the web chat channel."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The phone-first chat page."""
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @router.post("/api/chat", response_model=ChatResponse, tags=["webchat"])
    async def chat(request: ChatRequest, rt: RuntimeDep) -> dict[str, Any]:
        """Send one message; a retry with the same ``message_id`` gets the same replies once."""
        result = await rt.dispatcher.handle(to_incoming(request))
        return {"replies": [reply.to_dict() for reply in result.replies]}

    @router.get("/api/chat/{session_id}/events", response_model=EventsResponse, tags=["webchat"])
    async def events(
        session_id: SessionId, rt: RuntimeDep, after: Annotated[int, Query(ge=0, le=2**62)] = 0
    ) -> dict[str, Any]:
        """Messages pushed to this session (staff replies, notifications) with id > ``after``."""
        async with rt.db.session() as session:
            conversation = await repo.find_conversation(
                session, channel=Channel.WEBCHAT.value, external_id=session_id
            )
            if conversation is None:
                return {"events": []}
            rows = await repo.events_after(
                session, conversation_id=conversation.id, after=after, kinds=EVENT_KINDS
            )
            return {
                "events": [
                    {
                        "id": row.id,
                        "kind": row.kind,
                        "text": row.text or "",
                        "buttons": (row.data or {}).get("buttons", []),
                    }
                    for row in rows
                ]
            }

    return router
