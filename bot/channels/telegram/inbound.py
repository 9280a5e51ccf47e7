"""Telegram updates in: private chats become :class:`IncomingMessage` for the dispatcher.

Each update runs as a background task that first takes the chat's lock, so a chat's messages are
handled (and answered) in arrival order while other chats proceed concurrently. Stickers, voice,
edits and photos that cannot be used get a polite answer (once per update); the staff group's
updates go to its hook; other group chats are ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, CallbackQuery, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, MessageEntityType
from telegram.error import TelegramError

from bot.channels.base import ChannelSender, ChatUnreachable, StaffGroupHandler, StaffGroupUpdate
from bot.channels.delivery import Handle, process_and_reply
from bot.channels.telegram.callbacks import CallbackPayloads
from bot.conversation.locks import ConversationKey, ConversationLocks
from bot.conversation.media import MediaRejected, MediaStore
from bot.privacy import mask_id
from bot.tasks import Spawn
from flows.messages import Channel, ContentKind, IncomingMessage, Location, Media, Reply
from flows.texts import Texts
from storage import repositories as repo
from storage.db import Database

logger = logging.getLogger(__name__)

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


class ReplyChannel(ChannelSender, Protocol):
    """What the update handler needs of the channel it answers through."""

    on_staff_group: StaffGroupHandler | None

    def unblocked(self, chat_id: str) -> None:
        """The resident wrote: they can be reached again."""
        ...

    async def set_unreachable(self, chat_id: str, unreachable: bool) -> None:
        """Record that the resident blocked (or unblocked) the bot."""
        ...


def parse_update(body: bytes, bot: Bot) -> Update | None:
    """The Update in a webhook body, or None when it is not JSON or not an Update."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        return None
    try:
        return Update.de_json(data, bot)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


async def language_of(session: AsyncSession, chat_id: str, *, default: str) -> str:
    """The language of the Telegram resident in ``chat_id`` (``default`` for a new chat)."""
    conversation = await repo.find_conversation(session, channel=Channel.TELEGRAM.value, external_id=chat_id)
    if conversation is None:
        return default
    return conversation.resident.language


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


class UpdateHandler:
    """Routes one update: private chats to the dispatcher, the staff group to its hook, others dropped."""

    def __init__(
        self,
        channel: ReplyChannel,
        *,
        bot: Bot,
        bot_id: str,
        db: Database,
        texts: Texts,
        media: MediaStore,
        handle: Handle,
        spawn: Spawn,
        payloads: CallbackPayloads,
        staff_group_id: str | None,
        default_language: str,
    ) -> None:
        self._channel = channel
        self._bot = bot
        self.bot_id = bot_id
        self._db = db
        self._texts = texts
        self._media = media
        self._handle = handle
        self._spawn = spawn
        self._payloads = payloads
        self._staff_group_id = staff_group_id
        self._default_language = default_language
        self._locks = ConversationLocks()

    def _key(self, update: Update) -> str:
        return f"{self.bot_id}:{update.update_id}"

    async def handle(self, update: Update) -> None:
        """Route one update: private chats to the dispatcher, the staff group to its hook, others dropped."""
        chat = update.effective_chat
        if chat is None:
            return
        chat_id = str(chat.id)
        try:
            if self._staff_group_id is not None and chat_id == self._staff_group_id:
                await self._to_staff_group(update, chat_id)  # the staff hook answers its own buttons
                return
            if update.callback_query is not None:
                # Stop the button's spinner now, without waiting for this chat's earlier turns.
                self._spawn(self._answer_callback(update.callback_query), name="telegram-answer-callback")
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
        self._channel.unblocked(chat_id)
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
        await process_and_reply(self._handle, self._channel, msg)

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
        payload = await self._payloads.resolve(chat_id, data)
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
        limit = self._media.max_bytes
        if size is not None and size > limit:
            raise MediaRejected(f"file of {size} bytes is over the {limit}-byte limit")
        tg_file = await self._bot.get_file(file_id)
        if tg_file.file_size is not None and tg_file.file_size > limit:
            raise MediaRejected(f"file of {tg_file.file_size} bytes is over the {limit}-byte limit")
        data = bytes(await tg_file.download_as_bytearray())
        return await asyncio.to_thread(self._media.save, data)

    async def _answer_callback(self, query: CallbackQuery) -> None:
        try:
            await query.answer()
        except TelegramError:
            logger.warning("telegram: answerCallbackQuery failed", exc_info=True)

    async def _answer_politely(self, update: Update, chat_id: str, key: str) -> None:
        """Answer a message the flows cannot use (sticker, voice, edit…) once; the flow state is kept."""
        async with self._db.session() as session:
            fresh = await repo.claim_platform_message(
                session, channel=Channel.TELEGRAM.value, chat_id=chat_id, message_id=self._key(update)
            )
            if not fresh:
                return
            lang = await language_of(session, chat_id, default=self._default_language)
        await self._channel.send(chat_id, [Reply(self._texts.render(lang, key))])

    async def _on_membership(self, update: Update, chat_id: str) -> None:
        """A resident blocked (kicked) or unblocked the bot: keep ``residents.unreachable`` in step."""
        member = update.my_chat_member
        assert member is not None
        blocked = member.new_chat_member.status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT)
        await self._channel.set_unreachable(chat_id, blocked)

    async def _to_staff_group(self, update: Update, chat_id: str) -> None:
        handler = self._channel.on_staff_group
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
