"""The WhatsApp channel: webhooks processed in per-chat order, replies and notifications through Twilio.

Outbound, replies go through twilio's REST client on its aiohttp transport (``AsyncTwilioHttpClient``):
sending never blocks the event loop and needs no thread per message, and the rate limiter and 429
retries stay plain asyncio. Inside WhatsApp's 24-hour window a notification is a free-form message;
outside it, the approved template of its kind.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from bot.channels.base import pick_numbered
from bot.channels.delivery import Handle, process_and_reply
from bot.channels.ratelimit import RateLimiter
from bot.channels.whatsapp.inbound import MAX_INBOUND_TEXT, DeliveryUpdate, WhatsAppInbound, kind_of
from bot.channels.whatsapp.render import OutboundMessage, render_reply
from bot.channels.whatsapp.twilio import (
    ERROR_WINDOW_CLOSED,
    RATE_LIMITED_CODES,
    SendFailed,
    SendRateLimited,
    TemplateRequired,
    WhatsAppError,
)
from bot.conversation.locks import ConversationKey, ConversationLocks
from bot.conversation.media import ALLOWED_TYPES, MediaRejected, MediaStore
from bot.metrics import Metrics
from bot.privacy import mask_id
from bot.settings import Settings
from bot.tasks import Spawn
from flows.messages import Button, Channel, ContentKind, IncomingMessage, Media, Reply
from flows.texts import Texts
from storage import repositories as repo
from storage import whatsapp_repository as wa_repo
from storage.db import Database

if TYPE_CHECKING:
    from bot.channels.whatsapp.rest import TwilioRestClient

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window after the resident's last message
WINDOW_MARGIN = timedelta(minutes=2)  # queueing and clock skew: switch to the template a bit early
OPTIONS_TTL = timedelta(hours=24)  # numbered options older than this no longer map "2" to a button
_NUMBER_REPLY = re.compile(r"^\s*\d{1,2}\s*[.)]?\s*$")


class WhatsAppChannel:
    """Receives Twilio webhooks, sends replies and notifications through Twilio's REST API."""

    channel = Channel.WHATSAPP
    sent_status: str | None = None  # delivery comes later in status callbacks (/webhooks/whatsapp/status)

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database,
        media: MediaStore,
        texts: Texts,
        handle: Handle,
        spawn: Spawn,
        clock: Callable[[], datetime] | None = None,
        metrics: Metrics | None = None,
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
        self._metrics = metrics
        self._handle = handle
        self._spawn = spawn
        self.validator = RequestValidator(self._auth_token)
        self.limiter = RateLimiter(global_rate=settings.twilio.messages_per_second)
        self.webhook_url = settings.twilio.webhook_url
        self.status_url = settings.twilio.status_callback_url or _status_url_from(self.webhook_url)
        self._order = ConversationLocks()
        self._client: TwilioRestClient | None = None
        self._http: httpx.AsyncClient | None = None
        if self.webhook_url is None:
            logger.warning(
                "twilio.webhook_url is not set: Twilio signatures are checked against the URL each "
                "request arrived at, which is wrong behind a proxy or tunnel; set it to the public URL "
                "configured in Twilio (e.g. https://bot.example/webhooks/whatsapp)"
            )

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

    def _rest(self) -> TwilioRestClient:
        if self._client is None:
            from bot.channels.whatsapp.rest import TimedAsyncHttpClient, TwilioRestClient  # see rest.py

            http_client = TimedAsyncHttpClient(timeout=self.config.timeout)
            self._client = TwilioRestClient(
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

    def accept(self, inbound: WhatsAppInbound) -> None:
        """Process an acknowledged message in the background, after earlier ones of the same chat."""
        self._spawn(self.process(inbound), name=f"whatsapp-{inbound.message_sid}")

    async def process(self, inbound: WhatsAppInbound) -> None:
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
                    await process_and_reply(self._handle, self, msg)
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

    def pause(self, seconds: float) -> None:
        """Hold every send from this sender for ``seconds``."""
        self.limiter.pause(seconds)

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
                self._count_error(str(exc.status))
                limited = exc.status == 429 or exc.code in RATE_LIMITED_CODES
                if limited and attempt < self.config.max_retries:
                    delay = self.config.retry_backoff_seconds * 2**attempt
                    logger.warning(
                        "twilio rate limit (HTTP %s, code %s); retrying in %.2fs", exc.status, exc.code, delay
                    )
                    self.limiter.pause(delay)
                    continue
                refused = (
                    f"twilio refused the message to {mask_id(chat_id)}: HTTP {exc.status}, code {exc.code}"
                )
                self._count_send("rate_limited" if limited else "failed")
                if limited:
                    raise SendRateLimited(refused, status=exc.status, code=exc.code) from exc
                raise SendFailed(refused, status=exc.status, code=exc.code, retryable=False) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._count_error("network")
                self._count_send("failed")
                raise SendFailed(f"twilio unreachable: {exc!r}", retryable=True) from exc
            self._count_send("ok")
            logger.info("whatsapp sent %s to chat=%s", created.sid, mask_id(chat_id))
            return str(created.sid)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _count_send(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.sent(self.channel.value, outcome)

    def _count_error(self, status: str) -> None:
        if self._metrics is not None:
            self._metrics.platform_error(self.channel.value, status)


def _status_url_from(webhook_url: str | None) -> str | None:
    """``…/webhooks/whatsapp/status`` next to the configured inbound webhook URL."""
    if not webhook_url:
        return None
    parts = urlsplit(webhook_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/status"))
