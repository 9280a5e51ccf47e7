"""Telegram channel: python-telegram-bot as the Bot API client, polling or webhook into the dispatcher.

This is the only module that imports ``telegram``. It turns updates into :class:`IncomingMessage` and
:class:`Reply` values into Bot API calls; the flow engine stays the dialogue manager.

Receiving:
    * polling (the default: only ``TELEGRAM_BOT_TOKEN`` set): a background ``getUpdates`` loop. The
      offset is not stored by us: Telegram forgets every update below the ``offset`` of the next
      ``getUpdates`` call, so what a restart can replay is at most the last fetched batch, and the
      dispatcher drops those by ``(channel, "<bot id>:<update_id>")`` in the same transaction that
      stores their effect. :meth:`TelegramChannel.stop` waits for in-flight work, then confirms the
      last batch with one more ``getUpdates``.
    * webhook (``telegram.webhook_url`` set): ``setWebhook`` with a ``secret_token`` at start;
      ``POST /webhooks/telegram`` verifies the header before reading the body, answers at once and
      processes in the background.

Either way each update runs as a background task that first takes the chat's lock, so a chat's
messages are handled (and answered) in arrival order while other chats proceed concurrently.

Errors (``TelegramChannelError`` and below, raised by :meth:`TelegramChannel.send`):
    TelegramChannelError
    ├── ChatUnreachable   the resident blocked the bot (403); they are marked unreachable
    └── SendFailed        the Bot API refused or could not be reached
        └── SendRateLimited   still flood-limited (429) after bounded waiting; retry after ``retry_after``
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, MessageEntityType
from telegram.error import (
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, RequestData

from bot.channels.base import split_text
from bot.channels.registry import process_and_reply
from bot.deps import RuntimeDep
from bot.http import error_body
from bot.locks import ConversationKey, ConversationLocks
from bot.media import MediaRejected
from bot.privacy import mask_id
from bot.ratelimit import RateLimiter
from bot.settings import ConfigError
from flows.messages import Channel, ContentKind, IncomingMessage, Location, Media, Reply
from storage import repositories as repo
from storage.models import Message as TranscriptLine
from storage.models import Resident

if TYPE_CHECKING:
    from bot.runtime import Runtime

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
TEXT_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64
CALLBACK_TOKEN_PREFIX = "#h:"  # noqa: S105 - marks hashed callback data
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
MAX_SEND_ATTEMPTS = 4
MAX_RETRY_AFTER = 60.0
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_GRACE_SECONDS = 10.0
CALLBACK_MEMORY = 10_000
TRANSCRIPT_LOOKBACK = 50
IMAGE_DOCUMENT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
START_PARAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Command (without the slash) → the payload the flow engine understands (Rasa-style "/intent").
COMMAND_PAYLOADS = {
    "start": "/greet",
    "menu": "/help",
    "help": "/help",
    "batal": "/cancel",
    "cancel": "/cancel",
    "bahasa": "/change_language",
    "language": "/change_language",
    "hapusdata": "/erase_data",
    "datasaya": "/my_data",
}


class TelegramChannelError(Exception):
    """Something went wrong talking to the Bot API."""


class ChatUnreachable(TelegramChannelError):
    """The resident blocked the bot (403); they are marked unreachable and nothing more is sent."""


class SendFailed(TelegramChannelError):
    """The Bot API refused a send or could not be reached."""


class SendRateLimited(SendFailed):
    """Telegram still asks to wait after bounded retries; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"flood control: retry after {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class StaffGroupUpdate:
    """A message or button press in the configured staff group, without python-telegram-bot types."""

    update_id: int
    chat_id: str
    message_id: int | None
    thread_id: int | None
    user_id: str | None
    user_name: str | None
    text: str | None
    reply_to_message_id: int | None = None
    callback_data: str | None = None
    callback_query_id: str | None = None


StaffGroupHandler = Callable[[StaffGroupUpdate], Awaitable[None]]


def retry_after_seconds(exc: RetryAfter) -> float:
    """The wait a 429 asks for, in seconds (ptb 22 deprecates the int form; read it quietly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def telegram_chunks(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """``text`` in messages Telegram accepts: at most ``limit`` characters, counted in UTF-16 units."""
    chunks: list[str] = []
    for chunk in split_text(text, limit):
        if len(chunk.encode("utf-16-le")) // 2 > limit:
            chunks.extend(split_text(chunk, limit // 2))
        else:
            chunks.append(chunk)
    return chunks


def callback_token(payload: str) -> str:
    """A short, stable stand-in for a payload too long for ``callback_data`` (64 bytes)."""
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return f"{CALLBACK_TOKEN_PREFIX}{digest[:32]}"


def callback_data_for(payload: str) -> str:
    """The ``callback_data`` of a button: the payload itself when it fits, else its token."""
    if len(payload.encode()) <= CALLBACK_DATA_LIMIT and not payload.startswith(CALLBACK_TOKEN_PREFIX):
        return payload
    return callback_token(payload)


def derived_webhook_secret(token: str) -> str:
    """A webhook secret derived from the bot token, used when ``telegram.webhook_secret`` is unset."""
    return hmac.new(token.encode(), b"pontibot telegram webhook", hashlib.sha256).hexdigest()


def _unsupported_reason(message: Message) -> str:
    if message.sticker:
        return "sticker"
    if message.voice or message.audio or message.video_note:
        return "voice"
    if message.video or message.animation:
        return "video"
    if message.document:
        return "document"
    return "other"


def _command(message: Message) -> tuple[str, str] | None:
    """``("start", "cfd")`` for a message that starts with a bot command, else None."""
    text = message.text or ""
    entities = message.entities or ()
    if not any(e.type == MessageEntityType.BOT_COMMAND and e.offset == 0 for e in entities):
        return None
    head, _, rest = text.partition(" ")
    name = head[1:].split("@", 1)[0].lower()
    return name, rest.strip()


class AiohttpRequest(BaseRequest):
    """python-telegram-bot's HTTP transport on aiohttp instead of its default httpx.

    Every reply to a Telegram resident is one Bot API call: through httpx it cost about 0.45 ms of
    CPU, through aiohttp 0.06 ms (docs/BENCHMARKS.md), a tenth of the whole turn. python-telegram-bot
    still builds every call and reads every answer (errors, ``retry_after``, objects); only the bytes
    travel differently. Timeouts and connection failures become its ``TimedOut`` / ``NetworkError``,
    as with httpx.
    """

    def __init__(
        self,
        *,
        connection_pool_size: int,
        read_timeout: float | None,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._timeouts = {
            "read": read_timeout,
            "connect": connect_timeout,
            "pool": pool_timeout,
        }
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The read timeout when a call gives none."""
        return self._timeouts["read"]

    async def initialize(self) -> None:
        """Open the connection pool (in the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One HTTP call: the status and the body (python-telegram-bot reads both)."""
        if self._session is None or self._session.closed:
            await self.initialize()  # like httpx's client, usable before Bot.initialize()
        assert self._session is not None

        def chosen(name: str, given: Any) -> float | None:
            return self._timeouts[name] if given is BaseRequest.DEFAULT_NONE else given  # type: ignore[no-any-return]

        # aiohttp has no write timeout: a stalled upload ends at the read timeout of its answer.
        read, connect, pool = (
            chosen("read", read_timeout),
            chosen("connect", connect_timeout),
            chosen("pool", pool_timeout),
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None if connect is None or pool is None else connect + pool,  # a free connection
            sock_connect=connect,
            sock_read=read,
        )
        data: Any = None
        if request_data is not None:
            if request_data.contains_files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mime) in request_data.multipart_data.items():
                    form.add_field(name, content, filename=filename, content_type=mime)
                data = form
            else:
                data = request_data.json_parameters
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as response:
                body = await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
        # Like httpx's request log; the URL holds the bot token, which the log filter masks.
        logger.debug("Bot API %s %s -> %d", method, url, response.status)
        return response.status, body


class TelegramChannel:
    """Receives Telegram updates (polling or webhook), feeds the dispatcher, and sends replies."""

    channel = Channel.TELEGRAM

    def __init__(self, rt: Runtime, *, bot: Bot | None = None) -> None:
        settings = rt.settings
        token_secret = settings.secrets.telegram_bot_token
        if token_secret is None:
            raise ConfigError("TELEGRAM_BOT_TOKEN is not set; the Telegram channel cannot start")
        token = token_secret.get_secret_value()
        config = settings.telegram
        self._rt = rt
        self.bot_id = token.split(":", 1)[0]
        base = config.base_url.rstrip("/")
        self._requests = (
            AiohttpRequest(connection_pool_size=64, read_timeout=15.0),
            AiohttpRequest(connection_pool_size=1, read_timeout=10.0),  # the long poll's own
        )
        self._bot = bot or Bot(
            token,
            base_url=f"{base}/bot",
            base_file_url=f"{base}/file/bot",
            request=self._requests[0],
            get_updates_request=self._requests[1],
        )
        self.webhook_url = config.webhook_url
        secret = config.webhook_secret
        self._webhook_secret = secret.get_secret_value() if secret else derived_webhook_secret(token)
        self._poll_timeout = config.poll_timeout
        self.staff_group_id = str(config.staff_group_id) if config.staff_group_id is not None else None
        rates = settings.notifications.rates
        self.limiter = RateLimiter(
            global_rate=rates.get("telegram_global", 30.0),
            per_key_rate=rates.get("telegram_per_chat", 1.0),
        )
        # Set by the staff handoff (a forum supergroup): receives the staff group's updates.
        self.on_staff_group: StaffGroupHandler | None = None
        self.ready = asyncio.Event()
        self._locks = ConversationLocks()
        self._inflight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._offset: int | None = None
        self._blocked: set[str] = set()
        self._location_keyboard: set[str] = set()
        self._long_payloads: OrderedDict[str, str] = OrderedDict()

    @property
    def mode(self) -> str:
        """``webhook`` when a webhook URL is configured, else ``polling``."""
        return "webhook" if self.webhook_url else "polling"

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background (getMe, then setWebhook or the polling loop); never blocks start-up."""
        self._runner = self._rt.spawn(self._run(), name=f"telegram-{self.mode}")

    async def stop(self) -> None:
        """Stop receiving, let in-flight updates finish, confirm the last polled batch, close clients."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        await self.drain(grace=STOP_GRACE_SECONDS)
        if self.mode == "polling" and self._offset is not None:
            try:
                await self._bot.get_updates(offset=self._offset, timeout=0, limit=1)
            except TelegramError:
                logger.warning("telegram: could not confirm the last polled updates", exc_info=True)
        await self._bot.shutdown()
        for request in self._requests:  # also when the bot never initialised (sends open them lazily)
            await request.shutdown()

    async def drain(self, *, grace: float | None = None) -> None:
        """Wait until every accepted update has been handled (or ``grace`` seconds pass)."""
        deadline = None if grace is None else asyncio.get_running_loop().time() + grace
        while self._inflight:
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                return
            await asyncio.wait(set(self._inflight), timeout=remaining)

    async def _run(self) -> None:
        if not await self._connect():
            return
        if self.mode == "polling":
            await self._poll()

    async def _connect(self) -> bool:
        """getMe, then register the webhook (or delete it so getUpdates works); retried with backoff."""
        attempt = 0
        while True:
            try:
                await self._bot.initialize()
                if self.webhook_url:
                    await self._bot.set_webhook(
                        self.webhook_url,
                        secret_token=self._webhook_secret,
                        allowed_updates=list(ALLOWED_UPDATES),
                    )
                else:
                    await self._bot.delete_webhook()
            except InvalidToken:
                logger.error(
                    "telegram: the Bot API refused TELEGRAM_BOT_TOKEN; get a valid token from @BotFather "
                    "(Telegram stays off until restart)"
                )
                return False
            except TelegramError:
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                attempt += 1
                logger.warning("telegram: cannot reach the Bot API, retrying in %.0f s", delay, exc_info=True)
                await asyncio.sleep(delay)
            else:
                logger.info("telegram: connected as @%s (%s)", self._bot.username, self.mode)
                self.ready.set()
                return True

    async def _poll(self) -> None:
        """The getUpdates loop: each update is handed to a background task; errors back off and retry."""
        failures = 0
        while True:
            try:
                updates = await self._bot.get_updates(
                    offset=self._offset,
                    timeout=self._poll_timeout,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
            except RetryAfter as exc:
                await asyncio.sleep(retry_after_seconds(exc))
                continue
            except InvalidToken:
                logger.error("telegram: token refused while polling; polling stopped")
                return
            except (Conflict, NetworkError) as exc:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                logger.warning("telegram: getUpdates failed (%s), retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            for update in updates:
                self._offset = max(self._offset or 0, update.update_id + 1)
                self.accept(update)

    # ---- receiving -------------------------------------------------------------------------------

    def verify_secret(self, given: str | None) -> bool:
        """True when the webhook header carries our secret token (constant-time comparison)."""
        if given is None:
            return False
        return secrets.compare_digest(given.encode(), self._webhook_secret.encode())

    def parse_update(self, body: bytes) -> Update | None:
        """The Update in a webhook body, or None when it is not JSON or not an Update."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return None
        try:
            return Update.de_json(data, self._bot)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def accept(self, update: Update) -> None:
        """Queue one verified update; it is handled in the background, in order within its chat."""
        task = self._rt.spawn(self._handle_update(update), name=f"telegram-update-{update.update_id}")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _key(self, update: Update) -> str:
        return f"{self.bot_id}:{update.update_id}"

    async def _handle_update(self, update: Update) -> None:
        """Route one update: private chats to the dispatcher, the staff group to its hook, others dropped."""
        chat = update.effective_chat
        if chat is None:
            return
        chat_id = str(chat.id)
        try:
            if self.staff_group_id is not None and chat_id == self.staff_group_id:
                await self._to_staff_group(update, chat_id)  # the staff hook answers its own buttons
                return
            if update.callback_query is not None:
                # Stop the button's spinner now, without waiting for this chat's earlier turns.
                self._rt.spawn(self._answer_callback(update.callback_query), name="telegram-answer-callback")
            if chat.type != ChatType.PRIVATE:
                logger.debug("telegram: ignored update from a %s chat", chat.type)
                return
            async with self._locks.hold(ConversationKey(Channel.TELEGRAM.value, chat_id)):
                await self._handle_private(update, chat_id)
        except ChatUnreachable:
            logger.info("telegram: chat=%s has blocked the bot; reply dropped", mask_id(chat_id))
        except Exception:
            logger.exception("telegram: update %s failed chat=%s", update.update_id, mask_id(chat_id))

    async def _handle_private(self, update: Update, chat_id: str) -> None:
        if update.my_chat_member is not None:
            await self._on_membership(update, chat_id)
            return
        self._blocked.discard(chat_id)
        if update.callback_query is not None:
            msg = await self._from_callback(update, update.callback_query, chat_id)
            if msg is None:
                await self._answer_politely(update, chat_id, "telegram.button_expired")
                return
        elif update.edited_message is not None:
            if update.edited_message.location is None:  # live-location moves arrive as edits: ignore
                await self._answer_politely(update, chat_id, "telegram.unsupported.edited")
            return
        elif update.message is not None:
            message = update.message
            photo = self._photo_of(message)
            if photo is not None:
                try:
                    media = await self._download(*photo)
                except MediaRejected as exc:
                    logger.info("telegram: photo refused chat=%s: %s", mask_id(chat_id), exc)
                    await self._answer_politely(update, chat_id, "telegram.photo_rejected")
                    return
                except TelegramError:
                    logger.warning("telegram: photo download failed chat=%s", mask_id(chat_id), exc_info=True)
                    await self._answer_politely(update, chat_id, "telegram.photo_failed")
                    return
                msg = self._incoming(
                    update, message, chat_id, text=message.caption, kind=ContentKind.PHOTO, media=(media,)
                )
            else:
                built = self._from_message(update, message, chat_id)
                if built is None:
                    reason = _unsupported_reason(message)
                    await self._answer_politely(update, chat_id, f"telegram.unsupported.{reason}")
                    return
                msg = built
        else:
            return
        await process_and_reply(self._rt, self, msg)

    def _incoming(self, update: Update, message: Message, chat_id: str, **fields: Any) -> IncomingMessage:
        user = message.from_user
        return IncomingMessage(
            channel=Channel.TELEGRAM,
            chat_id=chat_id,
            user_id=str(user.id) if user else chat_id,
            message_id=self._key(update),
            profile_name=user.first_name if user else None,
            received_at=message.date,
            **fields,
        )

    def _from_message(self, update: Update, message: Message, chat_id: str) -> IncomingMessage | None:
        """Text, commands and locations as IncomingMessage; None for kinds the bot does not read."""
        if message.venue is not None:
            venue = message.venue
            point = Location(
                venue.location.latitude, venue.location.longitude, address=venue.address, label=venue.title
            )
            return self._incoming(update, message, chat_id, location=point, kind=ContentKind.LOCATION)
        if message.location is not None:
            point = Location(message.location.latitude, message.location.longitude)
            return self._incoming(update, message, chat_id, location=point, kind=ContentKind.LOCATION)
        if not message.text:
            return None
        command = _command(message)
        if command is not None and command[0] in COMMAND_PAYLOADS:
            name, argument = command
            start_param = argument if name == "start" and START_PARAM.match(argument) else None
            return self._incoming(
                update,
                message,
                chat_id,
                text=message.text,
                payload=COMMAND_PAYLOADS[name],
                start_param=start_param,
                kind=ContentKind.COMMAND,
            )
        return self._incoming(update, message, chat_id, text=message.text, kind=ContentKind.TEXT)

    async def _from_callback(
        self, update: Update, query: CallbackQuery, chat_id: str
    ) -> IncomingMessage | None:
        """A button press as a message with the button's payload; None when the payload is unknown."""
        data = query.data
        if not data:
            return None
        title: str | None = None
        if isinstance(query.message, Message) and query.message.reply_markup is not None:
            for row in query.message.reply_markup.inline_keyboard:
                for button in row:
                    if button.callback_data == data:
                        title = button.text
        payload = await self.resolve_callback_data(chat_id, data)
        if payload is None and title is None:
            return None
        return IncomingMessage(
            channel=Channel.TELEGRAM,
            chat_id=chat_id,
            user_id=str(query.from_user.id),
            message_id=self._key(update),
            text=title,
            payload=payload,
            profile_name=query.from_user.first_name,
            kind=ContentKind.TEXT,
        )

    async def resolve_callback_data(self, chat_id: str, data: str) -> str | None:
        """The payload behind ``callback_data``: itself, or for a token the long payload it stands for.

        Tokens are remembered in memory when sent; after a restart the payload is found again in the
        conversation's transcript (every reply is stored with its buttons before it is sent), by
        hashing the recent buttons' payloads.
        """
        if not data.startswith(CALLBACK_TOKEN_PREFIX):
            return data
        if (known := self._long_payloads.get(data)) is not None:
            return known
        async with self._rt.db.session() as session:
            conversation = await repo.find_conversation(
                session, channel=Channel.TELEGRAM.value, external_id=chat_id
            )
            if conversation is None:
                return None
            rows: Sequence[dict[str, Any] | None] = (
                (
                    await session.execute(
                        select(TranscriptLine.data)
                        .where(
                            TranscriptLine.conversation_id == conversation.id,
                            TranscriptLine.direction == "out",
                        )
                        .order_by(TranscriptLine.id.desc())
                        .limit(TRANSCRIPT_LOOKBACK)
                    )
                )
                .scalars()
                .all()
            )
            for row in rows:
                for button in (row or {}).get("buttons", []):
                    payload = str(button.get("payload", ""))
                    if callback_token(payload) == data:
                        return payload
        return None

    def _photo_of(self, message: Message) -> tuple[str, int | None] | None:
        """(file_id, size) of the largest photo size, or of an image sent as a file."""
        if message.photo:
            largest = max(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
            return largest.file_id, largest.file_size
        document = message.document
        if document is not None and document.mime_type in IMAGE_DOCUMENT_TYPES:
            return document.file_id, document.file_size
        return None

    async def _download(self, file_id: str, size: int | None) -> Media:
        """getFile + download into the media store; refuses files over the size limit before fetching."""
        limit = self._rt.media.max_bytes
        if size is not None and size > limit:
            raise MediaRejected(f"file of {size} bytes is over the {limit}-byte limit")
        tg_file = await self._bot.get_file(file_id)
        if tg_file.file_size is not None and tg_file.file_size > limit:
            raise MediaRejected(f"file of {tg_file.file_size} bytes is over the {limit}-byte limit")
        data = bytes(await tg_file.download_as_bytearray())
        return await asyncio.to_thread(self._rt.media.save, data)

    async def _answer_callback(self, query: CallbackQuery) -> None:
        try:
            await query.answer()
        except TelegramError:
            logger.warning("telegram: answerCallbackQuery failed", exc_info=True)

    async def _answer_politely(self, update: Update, chat_id: str, key: str) -> None:
        """Answer a message the flows cannot use (sticker, voice, edit…) once; the flow state is kept."""
        async with self._rt.db.session() as session:
            fresh = await repo.claim_platform_message(
                session, channel=Channel.TELEGRAM.value, chat_id=chat_id, message_id=self._key(update)
            )
            if not fresh:
                return
            lang = await self._language(session, chat_id)
        await self.send(chat_id, [Reply(self._rt.texts.render(lang, key))])

    async def _language(self, session: AsyncSession, chat_id: str) -> str:
        conversation = await repo.find_conversation(
            session, channel=Channel.TELEGRAM.value, external_id=chat_id
        )
        if conversation is None:
            return self._rt.settings.default_language
        return conversation.resident.language

    async def _on_membership(self, update: Update, chat_id: str) -> None:
        """A resident blocked (kicked) or unblocked the bot: keep ``residents.unreachable`` in step."""
        member = update.my_chat_member
        assert member is not None
        blocked = member.new_chat_member.status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT)
        await self._set_unreachable(chat_id, blocked)

    async def _set_unreachable(self, chat_id: str, unreachable: bool) -> None:
        if unreachable:
            self._blocked.add(chat_id)
        else:
            self._blocked.discard(chat_id)
        async with self._rt.db.session() as session:
            await session.execute(
                sql_update(Resident)
                .where(Resident.channel == Channel.TELEGRAM.value, Resident.external_id == chat_id)
                .values(unreachable=unreachable)
            )
        logger.info("telegram: chat=%s unreachable=%s", mask_id(chat_id), unreachable)

    async def _to_staff_group(self, update: Update, chat_id: str) -> None:
        handler = self.on_staff_group
        if handler is None:
            logger.debug("telegram: staff group update %s dropped (no handler set)", update.update_id)
            return
        message = update.effective_message
        user = update.effective_user
        query = update.callback_query
        await handler(
            StaffGroupUpdate(
                update_id=update.update_id,
                chat_id=chat_id,
                message_id=message.message_id if message else None,
                thread_id=message.message_thread_id if message else None,
                user_id=str(user.id) if user else None,
                user_name=user.full_name if user else None,
                text=(message.text or message.caption) if message and not query else None,
                reply_to_message_id=(
                    message.reply_to_message.message_id if message and message.reply_to_message else None
                ),
                callback_data=query.data if query else None,
                callback_query_id=query.id if query else None,
            )
        )

    # ---- the staff group's forum topics (used by bot.staff.telegram_group) ------------------------

    async def create_forum_topic(self, chat_id: str, name: str) -> int:
        """Open a forum topic in a supergroup; returns its ``message_thread_id``.

        Raises:
            SendFailed: the Bot API refused (not a forum, the bot may not manage topics) or stayed limited.
        """
        topic = await self._call_api(chat_id, lambda: self._bot.create_forum_topic(chat_id, name[:128]))
        return int(topic.message_thread_id)

    async def close_forum_topic(self, chat_id: str, thread_id: int) -> None:
        """Close a forum topic (it stays readable); raises SendFailed when the Bot API refuses."""
        await self._call_api(chat_id, lambda: self._bot.close_forum_topic(chat_id, thread_id))

    async def send_to_topic(self, chat_id: str, thread_id: int, text: str) -> list[str]:
        """Post plain text into a forum topic (split at Telegram's limit); returns the message ids."""

        def post(chunk: str) -> Callable[[], Awaitable[Message]]:
            return lambda: self._bot.send_message(chat_id, chunk, message_thread_id=thread_id)

        return [str((await self._call(chat_id, post(chunk))).message_id) for chunk in telegram_chunks(text)]

    async def _call_api(self, chat_id: str, method: Callable[[], Awaitable[Any]]) -> Any:
        """A Bot API call other than a send, within the limiter; errors become SendFailed."""
        await self.limiter.acquire(chat_id)
        try:
            return await method()
        except RetryAfter as exc:
            raise SendRateLimited(retry_after_seconds(exc)) from exc
        except TelegramError as exc:
            raise SendFailed(f"Bot API call for chat {mask_id(chat_id)} failed: {exc}") from exc

    # ---- sending ---------------------------------------------------------------------------------

    async def send(self, chat_id: str, replies: Sequence[Reply]) -> list[str]:
        """Deliver ``replies`` in order within the rate limits; returns Telegram's message ids.

        Raises:
            ChatUnreachable: the resident blocked the bot (now or before); nothing more is sent.
            SendFailed: the Bot API refused a message or stayed flood-limited.
        """
        if chat_id in self._blocked:
            raise ChatUnreachable(f"chat {mask_id(chat_id)} has blocked the bot")
        ids: list[str] = []
        for reply in replies:
            ids.extend(await self._send_reply(chat_id, reply))
        return ids

    async def _send_reply(self, chat_id: str, reply: Reply) -> list[str]:
        inline = self._inline_keyboard(reply)
        chunks = telegram_chunks(reply.text) if reply.text.strip() else []
        location_keyboard = None
        if reply.request_location:
            location_keyboard = await self._location_keyboard_for(chat_id)
        ids: list[str] = []
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None = None
            if last and reply.venue is None and inline is not None:
                markup = inline
            elif last and reply.venue is None and location_keyboard is not None:
                markup, location_keyboard = location_keyboard, None
            elif (
                last
                and reply.venue is None
                and chat_id in self._location_keyboard
                and not reply.request_location
            ):
                markup = ReplyKeyboardRemove()
                self._location_keyboard.discard(chat_id)
            ids.append(await self._send_text(chat_id, chunk, markup))
        if reply.venue is not None:
            venue = reply.venue
            if venue.title and venue.address:
                sent = await self._call(
                    chat_id,
                    lambda: self._bot.send_venue(
                        chat_id, venue.lat, venue.lon, venue.title, venue.address, reply_markup=inline
                    ),
                )
            else:
                sent = await self._call(
                    chat_id,
                    lambda: self._bot.send_location(chat_id, venue.lat, venue.lon, reply_markup=inline),
                )
            ids.append(str(sent.message_id))
        if location_keyboard is not None:
            prompt = self._rt.texts.render(await self._chat_language(chat_id), "telegram.location_prompt")
            ids.append(await self._send_text(chat_id, prompt, location_keyboard))
        return ids

    async def _send_text(
        self,
        chat_id: str,
        text: str,
        markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None,
    ) -> str:
        # No parse mode: nothing a resident typed (echoed back in a reply) can turn into markup.
        sent = await self._call(chat_id, lambda: self._bot.send_message(chat_id, text, reply_markup=markup))
        if isinstance(markup, ReplyKeyboardMarkup):
            self._location_keyboard.add(chat_id)
        return str(sent.message_id)

    def _inline_keyboard(self, reply: Reply) -> InlineKeyboardMarkup | None:
        if not reply.buttons:
            return None
        rows = []
        for button in reply.buttons:
            data = callback_data_for(button.payload)
            if data != button.payload:
                self._remember_payload(data, button.payload)
            rows.append([InlineKeyboardButton(button.title, callback_data=data)])
        return InlineKeyboardMarkup(rows)

    def _remember_payload(self, token: str, payload: str) -> None:
        self._long_payloads[token] = payload
        self._long_payloads.move_to_end(token)
        while len(self._long_payloads) > CALLBACK_MEMORY:
            self._long_payloads.popitem(last=False)

    async def _location_keyboard_for(self, chat_id: str) -> ReplyKeyboardMarkup:
        title = self._rt.texts.render(await self._chat_language(chat_id), "telegram.location_button")
        return ReplyKeyboardMarkup(
            [[KeyboardButton(title, request_location=True)]], resize_keyboard=True, one_time_keyboard=True
        )

    async def _chat_language(self, chat_id: str) -> str:
        async with self._rt.db.session() as session:
            return await self._language(session, chat_id)

    async def _call(self, chat_id: str, method: Callable[[], Awaitable[Message]]) -> Message:
        """One Bot API send within the limiter; 429 pauses the bot and retries (bounded); 403 blocks."""
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            await self.limiter.acquire(chat_id)
            try:
                return await method()
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if attempt == MAX_SEND_ATTEMPTS or wait > MAX_RETRY_AFTER:
                    raise SendRateLimited(wait) from exc
                logger.warning(
                    "telegram: flood control, pausing sends for %.1f s (chat=%s, attempt %d)",
                    wait,
                    mask_id(chat_id),
                    attempt,
                )
                self.limiter.pause(wait)
            except Forbidden as exc:
                await self._set_unreachable(chat_id, True)
                raise ChatUnreachable(f"chat {mask_id(chat_id)} has blocked the bot") from exc
            except TelegramError as exc:
                raise SendFailed(f"sending to chat {mask_id(chat_id)} failed: {exc}") from exc
        raise SendFailed("unreachable")  # pragma: no cover


def telegram_router() -> APIRouter:
    """``POST /webhooks/telegram``: verify the secret header, parse, acknowledge, process in background."""
    router = APIRouter()

    @router.post("/webhooks/telegram", tags=["telegram"], status_code=200, response_class=Response)
    async def telegram_webhook(
        request: Request,
        rt: RuntimeDep,
        secret_token: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
    ) -> Response:
        """One update from Telegram; 403 without our secret token, 400 when it is not an Update."""
        channel = rt.channels.get(Channel.TELEGRAM)
        if not isinstance(channel, TelegramChannel) or channel.mode != "webhook":
            raise HTTPException(status_code=404)
        if not channel.verify_secret(secret_token):
            client = request.client.host if request.client else "?"
            logger.warning("telegram webhook: wrong or missing secret token from %s; refused", client)
            raise HTTPException(status_code=403)
        update = channel.parse_update(await request.body())
        if update is None:
            return JSONResponse(error_body(400, "invalid_update"), status_code=400)
        channel.accept(update)
        return Response(status_code=200)

    return router
