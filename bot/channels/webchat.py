"""Web chat channel: the page at ``/``, ``POST /api/chat`` and the pushed-events feed (DESIGN 3.5).

The session id is the conversation's only credential. A session starts with its first message, and
a *new* one is refused when its id has the page's shape but not the page's 128 random bits (422
``weak_session_id``) or when its client address opened too many lately (429 ``too_many_new_sessions``
with ``Retry-After``; ``bot.conversation.client_limits``). Messages of a session that exists always go on.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import OrderedDict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.conversation.media import MediaRejected
from bot.runtime import Runtime
from bot.web import TEMPLATES
from bot.web.deps import RuntimeDep
from bot.web.http import error_body
from flows.messages import Channel, ContentKind, IncomingMessage, Location, Reply
from flows.texts import LANGUAGES
from storage import repositories as repo

PHOTO_PATH = "/api/chat/photo"
BOOTH_SOURCE_PREFIX = "cfd-"

SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
# The page makes ids as "web-" or "cfd-" and 32 hex digits from crypto.getRandomValues (128 bits).
# An id of that shape (the prefix, then 12 or more letters and digits) that is not the 128-bit form
# came from an older page's Math.random fallback: it cannot start a session. API clients' ids of
# other shapes ("x", "cfd-visitor-1", "warga-42") are not judged.
PAGE_ID_SHAPE = re.compile(r"^(web|cfd)-[0-9A-Za-z]{12,}$")
PAGE_ID = re.compile(r"^(web|cfd)-[0-9a-f]{32}$")
KNOWN_SESSIONS = 50_000  # session ids this process remembers to exist (the rest cost one lookup)
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
    language: Literal["id", "en"] | None = None  # the page's labels: a new conversation starts in it

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
    """The bot's direct replies to one message, and the language the conversation is now in."""

    replies: list[ReplyOut]
    language: Literal["id", "en"] | None = None


class EventOut(BaseModel):
    """A message that did not come as a direct reply (staff reply, notification)."""

    id: int
    kind: str
    text: str
    buttons: list[ButtonOut] = []


class EventsResponse(BaseModel):
    """Pushed messages after a given id, oldest first."""

    events: list[EventOut]


def to_incoming(request: ChatRequest, *, booth: bool = False, origin: str | None = None) -> IncomingMessage:
    """The internal message for one web chat request (``origin``: the client's address)."""
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
        start_param=_source(request.session_id, booth=booth),
        origin=origin,
        language=request.language,
    )


def weak_page_id(session_id: str) -> bool:
    """True for an id of the page's shape without the page's 128 random bits (see PAGE_ID_SHAPE)."""
    return PAGE_ID_SHAPE.match(session_id) is not None and PAGE_ID.match(session_id) is None


class KnownSessions:
    """Session ids known to exist (most recent kept), so only a new session costs a database lookup."""

    def __init__(self, size: int = KNOWN_SESSIONS) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, session_id: str) -> bool:
        if session_id in self._ids:
            self._ids.move_to_end(session_id)
            return True
        return False

    def add(self, session_id: str) -> None:
        """Remember that ``session_id`` exists."""
        self._ids[session_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)


def client_address(request: Request) -> str | None:
    """The client's address (the real one behind a trusted proxy: bot.web.http.ClientAddressMiddleware)."""
    return request.client.host if request.client else None


async def refusal(
    rt: Runtime, known: KnownSessions, session_id: str, origin: str | None
) -> JSONResponse | None:
    """The 422/429 answer when ``session_id`` is new and may not start now; None to go on."""
    if session_id in known:
        return None
    async with rt.db.session() as session:
        exists = await repo.find_conversation(session, channel=Channel.WEBCHAT.value, external_id=session_id)
    if exists is None:
        if weak_page_id(session_id):
            message = (
                "session_id ini tidak cukup acak untuk memulai percakapan: buat yang baru, "
                "'web-' lalu 32 digit heksadesimal dari 128 bit acak."
            )
            return JSONResponse(error_body(422, "weak_session_id", message=message), status_code=422)
        wait = rt.client_limits.admit_new_session(origin) if origin else 0
        if wait:
            return JSONResponse(
                error_body(429, "too_many_new_sessions", {"retry_after": wait}),
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        rt.metrics.session_started()
    known.add(session_id)
    return None


def reply_out(reply: Reply) -> dict[str, Any]:
    """One reply as :class:`ReplyOut` serialises it (every field, defaults included)."""
    data = reply.to_dict()
    return {
        "text": data["text"],
        "buttons": data["buttons"],
        "venue": data.get("venue"),
        "request_location": bool(data.get("request_location", False)),
    }


def _source(session_id: str, *, booth: bool) -> str | None:
    """``cfd`` for sessions opened from the poster (their id says so) or any session in booth mode."""
    return "cfd" if booth or session_id.startswith(BOOTH_SOURCE_PREFIX) else None


def render_page(rt: Any, lang: str) -> str:
    """The chat page with its labels in ``lang`` and both catalogues for the language switch."""
    catalogue = {code: rt.texts.section(code, "webchat") for code in LANGUAGES}
    texts_json = json.dumps(catalogue, ensure_ascii=False).replace("</", "<\\/")
    template = TEMPLATES.get_template("chat.html")
    return template.render(lang=lang, t=catalogue[lang], texts_json=texts_json)


def webchat_router() -> APIRouter:
    """Routes of the web chat channel."""
    router = APIRouter()
    known = KnownSessions()

    @router.get("/", include_in_schema=False)
    async def page(rt: RuntimeDep, lang: str | None = None) -> HTMLResponse:
        """The phone-first chat page (``?lang=en`` for English labels)."""
        chosen = lang if lang in LANGUAGES else rt.settings.default_language
        return HTMLResponse(render_page(rt, chosen), headers={"Cache-Control": "no-cache"})

    @router.post("/api/chat", response_model=ChatResponse, tags=["webchat"])
    async def chat(body: ChatRequest, request: Request, rt: RuntimeDep) -> JSONResponse:
        """Send one message; a retry with the same ``message_id`` gets the same replies once."""
        origin = client_address(request)
        refused = await refusal(rt, known, body.session_id, origin)
        if refused is not None:
            return refused
        result = await rt.dispatcher.handle(to_incoming(body, booth=rt.settings.demo.enabled, origin=origin))
        # ChatResponse's JSON, built here: FastAPI need not validate our own values on every message.
        return JSONResponse(
            {"replies": [reply_out(reply) for reply in result.replies], "language": result.language}
        )

    @router.post(PHOTO_PATH, response_model=ChatResponse, tags=["webchat"])
    async def photo(
        request: Request,
        rt: RuntimeDep,
        session_id: Annotated[str, Form(pattern=SESSION_ID_PATTERN, max_length=128)],
        file: Annotated[UploadFile, File(description="A JPEG, PNG, WebP or GIF photo")],
        message_id: Annotated[str | None, Form(pattern=SESSION_ID_PATTERN, max_length=128)] = None,
    ) -> dict[str, Any] | JSONResponse:
        """Send a photo (multipart); the bot answers as to any message."""
        origin = client_address(request)
        refused = await refusal(rt, known, session_id, origin)
        if refused is not None:
            return refused
        data = await file.read(rt.media.max_bytes + 1)
        try:
            media = rt.media.save(data)
        except MediaRejected as exc:
            status = 413 if len(data) > rt.media.max_bytes else 415
            raise HTTPException(status, str(exc)) from None
        msg = IncomingMessage(
            channel=Channel.WEBCHAT,
            chat_id=session_id,
            user_id=session_id,
            message_id=message_id or f"auto-{uuid.uuid4().hex}",
            media=(media,),
            kind=ContentKind.PHOTO,
            start_param=_source(session_id, booth=rt.settings.demo.enabled),
            origin=origin,
        )
        result = await rt.dispatcher.handle(msg)
        return {"replies": [reply.to_dict() for reply in result.replies], "language": result.language}

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
