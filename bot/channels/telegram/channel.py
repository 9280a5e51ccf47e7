"""The Telegram channel: connects (polling or webhook), hands updates to :mod:`.inbound`, sends replies.

Receiving:
    * polling (the default: only ``TELEGRAM_BOT_TOKEN`` set): a background ``getUpdates`` loop. The
      offset is not stored by us: Telegram forgets every update below the ``offset`` of the next
      ``getUpdates`` call, so what a restart can replay is at most the last fetched batch, and the
      dispatcher drops those by their platform message id in the same transaction that stores their
      effect. :meth:`TelegramChannel.stop` waits for in-flight work, then confirms the last batch with
      one more ``getUpdates``.
    * webhook (``telegram.webhook_url`` set): ``setWebhook`` with a ``secret_token`` at start;
      ``POST /webhooks/telegram`` (:mod:`.webhook`) verifies the header before reading the body,
      answers at once and processes in the background.

Sending keeps to ``notifications.rates`` (30 messages/s per bot, 1/s per chat), waits out a 429's
``retry_after`` within bounds, and marks a resident who blocked the bot (403) unreachable. Errors are
the channel port's (``bot.channels.base``): ``ChatUnreachable``, ``RateLimited``, ``SendFailed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.channels.base import (
    ChatUnreachable,
    RateLimited,
    SendFailed,
    StaffGroupHandler,
    split_text,
)
from bot.channels.delivery import Handle
from bot.channels.ratelimit import RateLimiter
from bot.channels.telegram.callbacks import CallbackPayloads
from bot.channels.telegram.inbound import UpdateHandler, language_of, parse_update
from bot.channels.telegram.transport import AiohttpRequest
from bot.conversation.media import MediaStore
from bot.metrics import Metrics
from bot.privacy import mask_id
from bot.settings import ConfigError, Settings
from bot.tasks import Spawn
from flows.messages import Channel, Reply
from flows.texts import Texts
from storage import repositories as repo
from storage.db import Database

logger = logging.getLogger(__name__)

TEXT_LIMIT = 4096
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
MAX_SEND_ATTEMPTS = 4
MAX_RETRY_AFTER = 60.0
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_GRACE_SECONDS = 10.0


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


def derived_webhook_secret(token: str) -> str:
    """A webhook secret derived from the bot token, used when ``telegram.webhook_secret`` is unset."""
    return hmac.new(token.encode(), b"pontibot telegram webhook", hashlib.sha256).hexdigest()


def error_status(exc: TelegramError) -> str:
    """The HTTP status behind a Bot API error (``network`` when no answer came) for the metrics."""
    statuses: tuple[tuple[type[TelegramError], str], ...] = (
        (RetryAfter, "429"),
        (Forbidden, "403"),
        (InvalidToken, "401"),
        (Conflict, "409"),
        (BadRequest, "400"),  # before NetworkError: ptb derives BadRequest from it
        (NetworkError, "network"),
    )
    return next((status for kind, status in statuses if isinstance(exc, kind)), "error")


class TelegramChannel:
    """Receives Telegram updates (polling or webhook), feeds the dispatcher, and sends replies."""

    channel = Channel.TELEGRAM
    sent_status: str | None = "sent"  # the Bot API has no delivery callbacks: accepted is all we learn

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database,
        texts: Texts,
        media: MediaStore,
        handle: Handle,
        spawn: Spawn,
        bot: Bot | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        token_secret = settings.secrets.telegram_bot_token
        if token_secret is None:
            raise ConfigError("TELEGRAM_BOT_TOKEN is not set; the Telegram channel cannot start")
        token = token_secret.get_secret_value()
        config = settings.telegram
        self._db = db
        self._texts = texts
        self._media = media
        self._handle = handle
        self._spawn = spawn
        self._metrics = metrics
        self._default_language = settings.default_language
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
        self.payloads = CallbackPayloads(db)
        self.limiter = RateLimiter(
            global_rate=rates.get("telegram_global", 30.0),
            per_key_rate=rates.get("telegram_per_chat", 1.0),
        )
        # Set by the staff handoff (a forum supergroup): receives the staff group's updates.
        self.on_staff_group: StaffGroupHandler | None = None
        self.ready = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._offset: int | None = None
        self._blocked: set[str] = set()
        self._location_keyboard: set[str] = set()

        self.updates = UpdateHandler(
            self,
            bot=self._bot,
            bot_id=self.bot_id,
            db=db,
            texts=texts,
            media=media,
            handle=handle,
            spawn=spawn,
            payloads=self.payloads,
            staff_group_id=self.staff_group_id,
            default_language=self._default_language,
        )

    @property
    def mode(self) -> str:
        """``webhook`` when a webhook URL is configured, else ``polling``."""
        return "webhook" if self.webhook_url else "polling"

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background (getMe, then setWebhook or the polling loop); never blocks start-up."""
        self._runner = self._spawn(self._run(), name=f"telegram-{self.mode}")

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
        return parse_update(body, self._bot)

    def accept(self, update: Update) -> None:
        """Queue one verified update; it is handled in the background, in order within its chat."""
        task = self._spawn(self.updates.handle(update), name=f"telegram-update-{update.update_id}")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def unblocked(self, chat_id: str) -> None:
        """The resident wrote: they can be reached again."""
        self._blocked.discard(chat_id)

    async def set_unreachable(self, chat_id: str, unreachable: bool) -> None:
        """Record that the resident blocked (or unblocked) the bot; sends to a blocked chat stop at once."""
        if unreachable:
            self._blocked.add(chat_id)
        else:
            self._blocked.discard(chat_id)
        async with self._db.session() as session:
            await repo.set_unreachable(
                session, channel=Channel.TELEGRAM.value, external_id=chat_id, unreachable=unreachable
            )
        logger.info("telegram: chat=%s unreachable=%s", mask_id(chat_id), unreachable)

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
            self._count_error(exc)
            wait = retry_after_seconds(exc)
            raise RateLimited(f"flood control: retry after {wait:.0f} s", retry_after=wait) from exc
        except TelegramError as exc:
            self._count_error(exc)
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

    async def send_notification(
        self,
        chat_id: str,
        reply: Reply,
        *,
        template_key: str,
        variables: Mapping[str, str],
        last_inbound_at: datetime | None,
    ) -> list[str]:
        """A notification is an ordinary message on Telegram (no window, no templates)."""
        return await self.send(chat_id, [reply])

    def pause(self, seconds: float) -> None:
        """Hold every send of this bot for ``seconds`` (Telegram's flood control)."""
        self.limiter.pause(seconds)

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
            prompt = self._texts.render(await self._chat_language(chat_id), "telegram.location_prompt")
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
        rows = [
            [InlineKeyboardButton(button.title, callback_data=self.payloads.data_for(button.payload))]
            for button in reply.buttons
        ]
        return InlineKeyboardMarkup(rows)

    async def _location_keyboard_for(self, chat_id: str) -> ReplyKeyboardMarkup:
        title = self._texts.render(await self._chat_language(chat_id), "telegram.location_button")
        return ReplyKeyboardMarkup(
            [[KeyboardButton(title, request_location=True)]], resize_keyboard=True, one_time_keyboard=True
        )

    async def _chat_language(self, chat_id: str) -> str:
        async with self._db.session() as session:
            return await language_of(session, chat_id, default=self._default_language)

    async def _call(self, chat_id: str, method: Callable[[], Awaitable[Message]]) -> Message:
        """One Bot API send within the limiter; 429 pauses the bot and retries (bounded); 403 blocks."""
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            await self.limiter.acquire(chat_id)
            try:
                sent = await method()
            except RetryAfter as exc:
                self._count_error(exc)
                wait = retry_after_seconds(exc)
                if attempt == MAX_SEND_ATTEMPTS or wait > MAX_RETRY_AFTER:
                    self._count_send("rate_limited")
                    raise RateLimited(f"flood control: retry after {wait:.0f} s", retry_after=wait) from exc
                logger.warning(
                    "telegram: flood control, pausing sends for %.1f s (chat=%s, attempt %d)",
                    wait,
                    mask_id(chat_id),
                    attempt,
                )
                self.limiter.pause(wait)
                continue
            except Forbidden as exc:
                self._count_error(exc)
                self._count_send("blocked")
                await self.set_unreachable(chat_id, True)
                raise ChatUnreachable(f"chat {mask_id(chat_id)} has blocked the bot") from exc
            except TelegramError as exc:
                self._count_error(exc)
                self._count_send("failed")
                raise SendFailed(f"sending to chat {mask_id(chat_id)} failed: {exc}") from exc
            self._count_send("ok")
            return sent
        raise SendFailed("unreachable")  # pragma: no cover

    def _count_send(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.sent(self.channel.value, outcome)

    def _count_error(self, exc: TelegramError) -> None:
        if self._metrics is not None:
            self._metrics.platform_error(self.channel.value, error_status(exc))
