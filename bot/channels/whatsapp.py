"""WhatsApp through Twilio: signed webhooks in, REST messages out, the 24-hour window.

The only module that imports ``twilio``. Inbound, ``POST /webhooks/whatsapp`` is verified with
twilio's ``RequestValidator`` against ``twilio.webhook_url`` (the exact URL Twilio signs), answered at
once with empty TwiML and processed in the background in per-chat order. Outbound, replies go through
twilio's REST client on its aiohttp transport (``AsyncTwilioHttpClient``): sending never blocks the
event loop and needs no thread per message, and the rate limiter and 429 retries stay plain asyncio.

Errors of this module::

    WhatsAppError
    ├── SendFailed         Twilio refused the message or could not be reached (code, status, retryable)
    └── TemplateRequired   outside the 24-hour window with no approved template for the notification
    BadWebhook             a correctly signed request that is not a usable WhatsApp message (→ 400)
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp
import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.datastructures import ImmutableMultiDict
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from bot.channels.base import numbered_options, pick_numbered, split_text
from bot.channels.registry import process_and_reply
from bot.deps import RuntimeDep
from bot.locks import ConversationKey, ConversationLocks
from bot.media import ALLOWED_TYPES, MediaRejected, MediaStore
from bot.privacy import mask_id
from bot.ratelimit import RateLimiter
from bot.settings import Settings
from flows.messages import Button, Channel, ContentKind, IncomingMessage, Location, Media, Reply
from flows.texts import Texts
from storage import repositories as repo
from storage import whatsapp_models as wa_repo
from storage.db import Database

if TYPE_CHECKING:
    from bot.runtime import Runtime

logger = logging.getLogger(__name__)

DEFAULT_API_HOST = "api.twilio.com"
MAX_BODY_CHARS = 1600  # Twilio's limit for one message body
MAX_INBOUND_TEXT = 10_000  # what we read from a resident in one message (as the web chat)
MAX_FORM_FIELDS = 200
MAX_MEDIA = 10  # Twilio sends at most ten MediaUrlN
WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window after the resident's last message
WINDOW_MARGIN = timedelta(minutes=2)  # queueing and clock skew: switch to the template a bit early
OPTIONS_TTL = timedelta(hours=24)  # numbered options older than this no longer map "2" to a button
ERROR_WINDOW_CLOSED = 63016  # free-form message outside the 24-hour window
RATE_LIMITED_CODES = frozenset({20429, 14107})
QUICK_REPLY_MAX_BUTTONS = 3  # in-session WhatsApp quick replies (Content API, twilio/quick-reply)
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_ID_MAX = 200
QUICK_REPLY_BODY_MAX = 1024
MAX_PAYLOAD = 256  # the transcript's payload column
_SID = re.compile(r"^[A-Za-z]{2}[0-9A-Za-z]{8,62}$")
_WHATSAPP_ADDRESS = re.compile(r"^whatsapp:\+?[0-9]{6,20}$")
_NUMBER_REPLY = re.compile(r"^\s*\d{1,2}\s*[.)]?\s*$")
STATUS_MAP = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "undelivered",
    "canceled": "failed",
}


class WhatsAppError(Exception):
    """Something this channel could not do."""


class SendFailed(WhatsAppError):
    """Twilio did not accept a message; ``retryable`` when trying later may work (429, network)."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None, retryable: bool):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = retryable


class TemplateRequired(WhatsAppError):
    """The resident wrote more than 24 hours ago and no approved template is configured for this kind."""


class BadWebhook(ValueError):
    """A signed request that is not a usable WhatsApp message (missing sender, bad coordinates…)."""


# --- inbound: Twilio's form fields → our values --------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundMedia:
    """One ``MediaUrlN`` with its ``MediaContentTypeN``."""

    url: str
    content_type: str


@dataclass(frozen=True, slots=True)
class WhatsAppInbound:
    """The fields of one inbound Twilio WhatsApp webhook that the bot uses."""

    message_sid: str
    chat_id: str
    user_id: str
    body: str = ""
    button_payload: str | None = None
    button_text: str | None = None
    location: Location | None = None
    media: tuple[InboundMedia, ...] = ()
    profile_name: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """One status callback: our delivery status for a message SID (None when not one we track)."""

    message_sid: str
    status: str | None
    error: str | None = None


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:limit] if value else None


def _coordinate(form: Mapping[str, str], name: str, bound: float) -> float:
    try:
        value = float(form[name])
    except ValueError:
        raise BadWebhook(f"{name} is not a number") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise BadWebhook(f"{name} is out of range")
    return value


def parse_inbound(form: Mapping[str, str]) -> WhatsAppInbound:
    """The message in a verified inbound webhook; raises BadWebhook when it is not usable.

    Fields we do not use (SmsSid, NumSegments, MessageType, ReferralNumMedia, …) are ignored: Twilio
    adds fields over time, and refusing them would lose residents' messages.
    """
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
    if not _SID.match(sid):
        raise BadWebhook("MessageSid is missing or malformed")
    sender = (form.get("From") or "").strip()
    if not sender:
        raise BadWebhook("From is missing")
    if not _WHATSAPP_ADDRESS.match(sender):
        raise BadWebhook("From is not a WhatsApp address (whatsapp:+<number>)")
    wa_id = (form.get("WaId") or "").strip()
    user_id = wa_id if wa_id.isdigit() and len(wa_id) <= 20 else sender.removeprefix("whatsapp:")
    location = None
    if form.get("Latitude") or form.get("Longitude"):
        if not (form.get("Latitude") and form.get("Longitude")):
            raise BadWebhook("a location needs both Latitude and Longitude")
        location = Location(
            lat=_coordinate(form, "Latitude", 90.0),
            lon=_coordinate(form, "Longitude", 180.0),
            address=_clean(form.get("Address"), 300),
            label=_clean(form.get("Label"), 300),
        )
    raw_count = (form.get("NumMedia") or "0").strip()
    if not raw_count.isdigit():
        raise BadWebhook("NumMedia is not a number")
    media = []
    for i in range(min(int(raw_count), MAX_MEDIA)):
        url = (form.get(f"MediaUrl{i}") or "").strip()
        if url:
            content_type = (form.get(f"MediaContentType{i}") or "").split(";")[0].strip().lower()
            media.append(InboundMedia(url, content_type))
    payload = _clean(form.get("ButtonPayload"), MAX_PAYLOAD + 1)
    return WhatsAppInbound(
        message_sid=sid,
        chat_id=sender,
        user_id=user_id,
        body=form.get("Body") or "",
        button_payload=payload if payload and len(payload) <= MAX_PAYLOAD else None,
        button_text=_clean(form.get("ButtonText"), 256),
        location=location,
        media=tuple(media),
        profile_name=_clean(form.get("ProfileName"), 128),
    )


def parse_status(form: Mapping[str, str]) -> DeliveryUpdate:
    """The delivery update in a verified status callback; raises BadWebhook without a MessageSid."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not _SID.match(sid):
        raise BadWebhook("MessageSid is missing or malformed")
    raw = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    code = (form.get("ErrorCode") or "").strip()
    error = None
    if code:
        error = f"twilio {code[:12]}: {(form.get('ErrorMessage') or '').strip()[:500]}".rstrip(": ")
    return DeliveryUpdate(sid, STATUS_MAP.get(raw), error)


def kind_of(content_type: str) -> ContentKind:
    """What a non-image attachment is, for the flows' "I can read text, locations and photos"."""
    if content_type.startswith("image/"):
        return ContentKind.PHOTO
    if content_type.startswith("audio/"):
        return ContentKind.VOICE
    if content_type.startswith(("application/", "text/")):
        return ContentKind.DOCUMENT
    return ContentKind.OTHER


# --- outbound: our replies → Twilio message parameters ------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One Twilio message: a free-form body, or a Content API template with its variables."""

    body: str | None = None
    content_sid: str | None = None
    content_variables: tuple[tuple[str, str], ...] = ()

    def params(self) -> dict[str, str]:
        """The message-create parameters (without To/From) in twilio-python's names."""
        if self.content_sid is not None:
            variables = json.dumps(dict(self.content_variables), ensure_ascii=False)
            return {"content_sid": self.content_sid, "content_variables": variables}
        return {"body": self.body or ""}


def map_link(lat: float, lon: float) -> str:
    """A map link that opens in WhatsApp's browser or the maps app."""
    return f"https://maps.google.com/?q={lat:.6f},{lon:.6f}"


def quick_reply(text: str, buttons: Sequence[Button], templates: Mapping[str, str]) -> OutboundMessage | None:
    """The reply as a Content API quick reply when ``quick_reply_<n>`` is configured and it fits.

    The template (twilio/quick-reply) has body ``{{1}}`` and, per button i, title ``{{2i}}`` and
    id ``{{2i+1}}``; WhatsApp allows three in-session buttons of at most 20 characters.
    """
    content_sid = templates.get(f"quick_reply_{len(buttons)}")
    if (
        content_sid is None
        or not 1 <= len(buttons) <= QUICK_REPLY_MAX_BUTTONS
        or not text.strip()
        or len(text) > QUICK_REPLY_BODY_MAX
        or any(len(b.title) > QUICK_REPLY_TITLE_MAX or len(b.payload) > QUICK_REPLY_ID_MAX for b in buttons)
    ):
        return None
    variables = [("1", text)]
    for i, button in enumerate(buttons, start=1):
        variables += [(str(2 * i), button.title), (str(2 * i + 1), button.payload)]
    return OutboundMessage(content_sid=content_sid, content_variables=tuple(variables))


def render_reply(
    reply: Reply, *, lang: str, texts: Texts, templates: Mapping[str, str]
) -> tuple[list[OutboundMessage], tuple[Button, ...]]:
    """Twilio messages for one reply, and the buttons shown as numbered lines (empty when none were)."""
    parts = [reply.text.strip()] if reply.text.strip() else []
    if reply.venue is not None:
        venue = reply.venue
        link = map_link(venue.lat, venue.lon)
        parts.append(
            texts.render(lang, "whatsapp.venue", title=venue.title, address=venue.address, map_url=link)
        )
    if reply.request_location:
        parts.append(texts.render(lang, "whatsapp.share_location"))
    text = "\n\n".join(parts)
    numbered: tuple[Button, ...] = ()
    if reply.buttons:
        quick = quick_reply(text, reply.buttons, templates)
        if quick is not None:
            return [quick], ()
        text = "\n\n".join([*([text] if text else []), numbered_options(reply.buttons, lang=lang)])
        numbered = reply.buttons
    if not text:
        return [], ()
    return [OutboundMessage(body=chunk) for chunk in split_text(text, MAX_BODY_CHARS) if chunk], numbered


# --- twilio's client, pointed at twilio.api_base_url and with a timeout ---------------------------


class _TwilioRestClient(Client):  # type: ignore[misc]
    """twilio's Client whose REST host is ``twilio.api_base_url`` (Twilio's own unless configured).

    Every twilio-python request passes through ``Client.get_hostname`` (its edge/region hook), so
    moving the host there covers every resource without touching twilio's URL building.
    """

    def __init__(self, api_base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_base = urlsplit(api_base_url.rstrip("/"))

    def get_hostname(self, uri: str) -> str:
        """The URL for ``uri``: Twilio's (edge and region applied) or the same path on the configured host."""
        uri = super().get_hostname(uri)
        if self.api_base.netloc == DEFAULT_API_HOST and self.api_base.scheme == "https":
            return str(uri)
        parts = urlsplit(uri)
        path = self.api_base.path + parts.path
        return urlunsplit((self.api_base.scheme, self.api_base.netloc, path, parts.query, parts.fragment))


class _TimedAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """AsyncTwilioHttpClient with a default timeout and basic auth sent as a plain header.

    twilio passes ``timeout=None`` to aiohttp (no limit at all) unless told otherwise, and wraps the
    credentials in ``aiohttp.BasicAuth``, which aiohttp 3.14 deprecates; the header is the same bytes.
    """

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (twilio's HttpClient signature)
        allow_redirects: bool = False,
    ) -> Any:
        """One request, bounded by the client's timeout unless the caller gave one."""
        headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )


# --- the channel --------------------------------------------------------------------------------


class WhatsAppChannel:
    """Receives Twilio webhooks, sends replies and notifications through Twilio's REST API."""

    channel = Channel.WHATSAPP

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database,
        media: MediaStore,
        texts: Texts,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        sid = settings.secrets.twilio_account_sid
        token = settings.secrets.twilio_auth_token
        sender = settings.twilio.whatsapp_from
        if not (sid and token and sender):
            raise WhatsAppError(
                "WhatsApp needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and twilio.whatsapp_from"
            )
        self.account_sid = sid
        self._auth_token = token.get_secret_value()
        self.sender = sender if sender.startswith("whatsapp:") else f"whatsapp:{sender}"
        self.config = settings.twilio
        self.default_language = settings.default_language
        self.db = db
        self.media = media
        self.texts = texts
        self.clock = clock
        self.validator = RequestValidator(self._auth_token)
        self.limiter = RateLimiter(global_rate=settings.twilio.messages_per_second)
        self.webhook_url = settings.twilio.webhook_url
        self.status_url = settings.twilio.status_callback_url or _status_url_from(self.webhook_url)
        self._order = ConversationLocks()
        self._client: _TwilioRestClient | None = None
        self._http: httpx.AsyncClient | None = None
        if self.webhook_url is None:
            logger.warning(
                "twilio.webhook_url is not set: Twilio signatures are checked against the URL each "
                "request arrived at, which is wrong behind a proxy or tunnel; set it to the public URL "
                "configured in Twilio (e.g. https://bot.example/webhooks/whatsapp)"
            )

    @classmethod
    def from_runtime(cls, rt: Runtime) -> WhatsAppChannel:
        """The channel for a runtime (its database, media store, texts and clock)."""
        return cls(rt.settings, db=rt.db, media=rt.media, texts=rt.texts, clock=rt.dispatcher.clock)

    def now(self) -> datetime:
        """The current time, aware (the injected clock's in tests)."""
        if self.clock is not None:
            return self.clock().astimezone(UTC)
        return datetime.now(UTC)

    async def start(self) -> None:
        """Nothing to start: Twilio calls our webhook; clients open on first use."""
        logger.info("whatsapp channel on, sender %s", mask_id(self.sender))

    async def stop(self) -> None:
        """Close the REST and media HTTP clients."""
        if self._client is not None:
            await self._client.http_client.close()
            self._client = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _rest(self) -> _TwilioRestClient:
        if self._client is None:
            http_client = _TimedAsyncHttpClient(timeout=self.config.timeout)
            self._client = _TwilioRestClient(
                self.config.api_base_url,
                username=self.account_sid,
                password=self._auth_token,
                account_sid=self.account_sid,
                http_client=http_client,
            )
        return self._client

    def _media_http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.config.timeout, follow_redirects=True, max_redirects=3
            )
        return self._http

    # --- webhooks ---------------------------------------------------------------------------

    def signed_url(self, request: Request, configured: str | None) -> str:
        """The URL Twilio signed: the configured public one, else the one the request arrived at."""
        return configured or str(request.url)

    async def verified_form(self, request: Request, *, signed_url: str) -> ImmutableMultiDict[str, str]:
        """The form of a request carrying a valid ``X-Twilio-Signature``; 403 otherwise (body not logged)."""
        signature = request.headers.get("X-Twilio-Signature")
        client = request.client.host if request.client else "?"
        if not signature:
            logger.warning(
                "whatsapp webhook refused: no X-Twilio-Signature (path=%s from %s)", request.url.path, client
            )
            raise HTTPException(403, "Akses ditolak: tanda tangan Twilio tidak ada.")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise HTTPException(415, "Expected application/x-www-form-urlencoded (a Twilio webhook).")
        body = await request.body()
        try:
            pairs = parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict"
            )
        except (UnicodeDecodeError, ValueError):
            logger.warning(
                "whatsapp webhook refused: unreadable form (path=%s from %s)", request.url.path, client
            )
            raise HTTPException(400, "The form body cannot be read.") from None
        form = ImmutableMultiDict(pairs)
        if not self.validator.validate(signed_url, form, signature):
            logger.warning(
                "whatsapp webhook refused: invalid X-Twilio-Signature (path=%s from %s)",
                request.url.path,
                client,
            )
            raise HTTPException(403, "Akses ditolak: tanda tangan Twilio tidak cocok.")
        return form

    def accept(self, rt: Runtime, inbound: WhatsAppInbound) -> None:
        """Process an acknowledged message in the background, after earlier ones of the same chat."""
        rt.spawn(self.process(rt, inbound), name=f"whatsapp-{inbound.message_sid}")

    async def process(self, rt: Runtime, inbound: WhatsAppInbound) -> None:
        """Turn the webhook into a message (media downloaded), dispatch it and send the replies."""
        # Tasks start in arrival order and take this lock first, so a photo that takes a while to
        # download is still answered before the text sent right after it.
        async with self._order.hold(ConversationKey(self.channel.value, inbound.chat_id)):
            try:
                if await self._seen(inbound.chat_id, inbound.message_sid):
                    logger.info("whatsapp retry of %s dropped", inbound.message_sid)
                    return
                msg, notes = await self.to_message(inbound)
                if notes:
                    await self._send_replies(inbound.chat_id, notes, replace_options=False)
                if msg is not None:
                    await process_and_reply(rt, self, msg)
            except Exception:
                logger.exception(
                    "whatsapp message %s chat=%s was not answered",
                    inbound.message_sid,
                    mask_id(inbound.chat_id),
                )

    async def _seen(self, chat_id: str, message_sid: str) -> bool:
        """True when the chat's message was handled before (saves downloading a retry's media again)."""
        async with self.db.session() as session:
            processed = await repo.get_processed_message(
                session, channel=self.channel.value, chat_id=chat_id, message_id=message_sid
            )
        return processed is not None

    async def record_status(self, update: DeliveryUpdate) -> None:
        """Store a delivery status on the outbox row sent with that SID; unknown SIDs are ignored."""
        if update.status is None:
            return
        async with self.db.session() as session:
            applied = await wa_repo.record_delivery_status(
                session, provider_message_id=update.message_sid, status=update.status, error=update.error
            )
        if applied is None:
            logger.debug("status %s for a message not in the outbox: %s", update.status, update.message_sid)
        elif not applied:
            logger.debug("status %s for %s is older than the stored one", update.status, update.message_sid)

    # --- inbound conversion -----------------------------------------------------------------

    async def to_message(self, inbound: WhatsAppInbound) -> tuple[IncomingMessage | None, list[Reply]]:
        """The internal message for a webhook (None when nothing usable is left), and notes to send."""
        notes: list[Reply] = []
        lang: str | None = None
        text: str | None = inbound.body if inbound.body.strip() else None
        payload = inbound.button_payload
        if payload is not None:
            text = inbound.button_text or text
        if text is not None and len(text) > MAX_INBOUND_TEXT:
            lang = lang or await self._language(inbound.chat_id)
            notes.append(Reply(self.texts.render(lang, "error.too_long", limit=MAX_INBOUND_TEXT)))
            text = None
        elif payload is None and text is not None and _NUMBER_REPLY.match(text):
            chosen = await self._numbered_choice(inbound.chat_id, text)
            if chosen is not None:
                text, payload = chosen.title, chosen.payload
        saved, other_kinds, rejected = await self._collect_media(inbound)
        if rejected:
            lang = lang or await self._language(inbound.chat_id)
            max_mb = max(1, self.media.max_bytes // 1_000_000)
            notes.append(Reply(self.texts.render(lang, "whatsapp.media_rejected", max_mb=max_mb)))
        if inbound.location is not None:
            kind = ContentKind.LOCATION
        elif saved:
            kind = ContentKind.PHOTO
        elif text is None and payload is None and other_kinds:
            kind = other_kinds[0]
        elif text is None and payload is None and (rejected or notes):
            return None, notes
        else:
            kind = ContentKind.TEXT
        msg = IncomingMessage(
            channel=Channel.WHATSAPP,
            chat_id=inbound.chat_id,
            user_id=inbound.user_id,
            message_id=inbound.message_sid,
            text=text,
            payload=payload,
            location=inbound.location,
            media=tuple(saved),
            kind=kind,
            profile_name=inbound.profile_name,
            received_at=self.now(),
        )
        return msg, notes

    async def _numbered_choice(self, chat_id: str, text: str) -> Button | None:
        async with self.db.session() as session:
            stored = await wa_repo.shown_options(
                session, channel=self.channel.value, external_id=chat_id, since=self.now() - OPTIONS_TTL
            )
        buttons = [Button(b["title"], b["payload"]) for b in stored]
        return pick_numbered(text, buttons)

    async def _collect_media(self, inbound: WhatsAppInbound) -> tuple[list[Media], list[ContentKind], bool]:
        saved: list[Media] = []
        other: list[ContentKind] = []
        rejected = False
        for item in inbound.media:
            if item.content_type not in ALLOWED_TYPES:
                other.append(kind_of(item.content_type))
                continue
            try:
                saved.append(await self._download(item.url))
            except (MediaRejected, httpx.HTTPError) as exc:
                logger.warning(
                    "whatsapp media of %s refused chat=%s: %s",
                    inbound.message_sid,
                    mask_id(inbound.chat_id),
                    exc,
                    exc_info=isinstance(exc, httpx.HTTPError),
                )
                rejected = True
        return saved, other, rejected

    def _trusted_media_url(self, url: str) -> bool:
        """Our Twilio credentials go only to the Twilio API host (redirects to the CDN drop them)."""
        parts = urlsplit(url)
        base = urlsplit(self.config.api_base_url)
        return (parts.scheme, parts.netloc) == (base.scheme, base.netloc)

    async def _download(self, url: str) -> Media:
        """Download one image with the account's basic auth, within the size limit, into the media store."""
        if not self._trusted_media_url(url):
            raise MediaRejected("media URL is not on the Twilio API host")
        limit = self.media.max_bytes
        chunks: list[bytes] = []
        size = 0
        auth = (self.account_sid, self._auth_token)
        async with self._media_http().stream("GET", url, auth=auth) as response:
            if response.status_code != 200:
                raise MediaRejected(f"media download answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise MediaRejected(f"media of {declared} bytes is over the {limit}-byte limit")
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise MediaRejected(f"media is over the {limit}-byte limit")
                chunks.append(chunk)
        return await asyncio.to_thread(self.media.save, b"".join(chunks))

    async def _language(self, chat_id: str) -> str:
        async with self.db.session() as session:
            resident = await wa_repo.find_resident(session, channel=self.channel.value, external_id=chat_id)
            return resident.language if resident is not None else self.default_language

    # --- sending ----------------------------------------------------------------------------

    async def send(self, chat_id: str, replies: Sequence[Reply]) -> list[str]:
        """Send a turn's replies in order; the numbered options shown replace the remembered ones."""
        return await self._send_replies(chat_id, replies, replace_options=True)

    def in_window(self, last_inbound_at: datetime | None) -> bool:
        """True while free-form messages may be sent (the resident wrote within the last 24 hours)."""
        if last_inbound_at is None:
            return False
        if last_inbound_at.tzinfo is None:
            last_inbound_at = last_inbound_at.replace(tzinfo=UTC)
        return self.now() - last_inbound_at < WINDOW - WINDOW_MARGIN

    async def send_notification(
        self,
        chat_id: str,
        reply: Reply,
        *,
        template_key: str | None,
        variables: Mapping[str, str],
        last_inbound_at: datetime | None,
    ) -> list[str]:
        """Push one notification: free-form inside the 24-hour window, the approved template outside.

        A free-form message Twilio refuses with 63016 (window closed) is sent again as the template.
        Returns the message SIDs (for the outbox's provider_message_id and the status callbacks).

        Raises:
            TemplateRequired: outside the window and ``twilio.templates[template_key]`` is not set.
            SendFailed: Twilio refused the message (``retryable`` for 429 after the retries, network).
        """
        if self.in_window(last_inbound_at):
            try:
                return await self._send_replies(
                    chat_id, [reply], replace_options=False, status_callback=self.status_url
                )
            except SendFailed as exc:
                if exc.code != ERROR_WINDOW_CLOSED:
                    raise
                logger.info("chat=%s: window closed (63016), sending the template instead", mask_id(chat_id))
        return [await self._send_template(chat_id, template_key, variables)]

    async def _send_template(
        self, chat_id: str, template_key: str | None, variables: Mapping[str, str]
    ) -> str:
        content_sid = self.config.templates.get(template_key) if template_key else None
        if content_sid is None:
            raise TemplateRequired(
                f"outside the 24-hour window a WhatsApp notification needs an approved template: set "
                f"twilio.templates.{template_key or '<kind>'} to its Content SID (HX…)"
            )
        message = OutboundMessage(
            content_sid=content_sid,
            content_variables=tuple((str(k), str(v)) for k, v in variables.items()),
        )
        return await self._create(chat_id, message, status_callback=self.status_url)

    async def _send_replies(
        self,
        chat_id: str,
        replies: Sequence[Reply],
        *,
        replace_options: bool,
        status_callback: str | None = None,
    ) -> list[str]:
        async with self.db.session() as session:
            resident = await wa_repo.find_resident(session, channel=self.channel.value, external_id=chat_id)
            lang = resident.language if resident is not None else self.default_language
            messages: list[OutboundMessage] = []
            shown: tuple[Button, ...] = ()
            for reply in replies:
                rendered, numbered = render_reply(
                    reply, lang=lang, texts=self.texts, templates=self.config.templates
                )
                messages += rendered
                shown = numbered or shown
            # Remembered before sending, so a quick "2" already finds them (in any worker).
            if resident is not None and (replace_options or shown):
                await wa_repo.remember_options(
                    session,
                    resident_id=resident.id,
                    buttons=[{"title": b.title, "payload": b.payload} for b in shown],
                    at=self.now(),
                )
        return [await self._create(chat_id, message, status_callback=status_callback) for message in messages]

    async def _create(
        self, chat_id: str, message: OutboundMessage, *, status_callback: str | None = None
    ) -> str:
        """Create one Twilio message within the rate limit; 429 / 20429 are retried with backoff."""
        params: dict[str, Any] = {"to": chat_id, "from_": self.sender, **message.params()}
        if status_callback:
            params["status_callback"] = status_callback
        messages = self._rest().messages
        for attempt in range(self.config.max_retries + 1):
            await self.limiter.acquire(chat_id)
            try:
                created = await messages.create_async(**params)
            except TwilioRestException as exc:
                limited = exc.status == 429 or exc.code in RATE_LIMITED_CODES
                if limited and attempt < self.config.max_retries:
                    delay = self.config.retry_backoff_seconds * 2**attempt
                    logger.warning(
                        "twilio rate limit (HTTP %s, code %s); retrying in %.2fs", exc.status, exc.code, delay
                    )
                    self.limiter.pause(delay)
                    continue
                raise SendFailed(
                    f"twilio refused the message to {mask_id(chat_id)}: HTTP {exc.status}, code {exc.code}",
                    status=exc.status,
                    code=exc.code,
                    retryable=limited,
                ) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise SendFailed(f"twilio unreachable: {exc!r}", retryable=True) from exc
            logger.info("whatsapp sent %s to chat=%s", created.sid, mask_id(chat_id))
            return str(created.sid)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _status_url_from(webhook_url: str | None) -> str | None:
    """``…/webhooks/whatsapp/status`` next to the configured inbound webhook URL."""
    if not webhook_url:
        return None
    parts = urlsplit(webhook_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/status"))


def twiml_ack() -> Response:
    """Empty TwiML: "received, no reply here" (replies go out through the REST API)."""
    return Response(str(MessagingResponse().to_xml()), media_type="text/xml")


def _channel_of(rt: Runtime) -> WhatsAppChannel:
    channel = rt.channels.get(Channel.WHATSAPP)
    if not isinstance(channel, WhatsAppChannel):
        raise HTTPException(404, "WhatsApp is not configured on this server.")
    return channel


def whatsapp_router() -> APIRouter:
    """Twilio's webhooks: inbound messages and message status callbacks."""
    router = APIRouter(tags=["whatsapp"])

    @router.post("/webhooks/whatsapp")
    async def inbound(request: Request, rt: RuntimeDep) -> Response:
        """Verify the signature, acknowledge with empty TwiML, process the message in the background."""
        channel = _channel_of(rt)
        form = await channel.verified_form(
            request, signed_url=channel.signed_url(request, channel.webhook_url)
        )
        try:
            message = parse_inbound(form)
        except BadWebhook as exc:
            logger.warning("whatsapp webhook refused: %s", exc)
            raise HTTPException(400, f"Not a usable WhatsApp message: {exc}.") from None
        channel.accept(rt, message)
        return twiml_ack()

    @router.post("/webhooks/whatsapp/status")
    async def status(request: Request, rt: RuntimeDep) -> Response:
        """Verify the signature, store the delivery status of an outbox message (unknown SIDs ignored)."""
        channel = _channel_of(rt)
        form = await channel.verified_form(
            request, signed_url=channel.signed_url(request, channel.status_url)
        )
        try:
            update = parse_status(form)
        except BadWebhook as exc:
            logger.warning("whatsapp status callback refused: %s", exc)
            raise HTTPException(400, f"Not a usable status callback: {exc}.") from None
        await channel.record_status(update)
        return twiml_ack()

    return router
