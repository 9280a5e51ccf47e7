"""Which channels run (from settings), their webhook routes, and how an accepted message is processed."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.channels.base import ChannelService
from bot.privacy import mask_id
from flows.messages import Channel, IncomingMessage
from storage.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from bot.runtime import Runtime

logger = logging.getLogger(__name__)

DB_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


def build_channels(rt: Runtime) -> dict[Channel, ChannelService]:
    """The push channels configured in settings (web chat and console need no service)."""
    channels: dict[Channel, ChannelService] = {}
    if rt.settings.telegram_enabled:
        # Imported here: bot.channels.telegram imports process_and_reply from this module.
        from bot.channels.telegram import TelegramChannel

        channels[Channel.TELEGRAM] = TelegramChannel(rt)
    if rt.settings.whatsapp_enabled:
        # Imported here: bot.channels.whatsapp imports process_and_reply from this module.
        from bot.channels.whatsapp import WhatsAppChannel

        channels[Channel.WHATSAPP] = WhatsAppChannel.from_runtime(rt)
    return channels


async def process_and_reply(rt: Runtime, channel: ChannelService, msg: IncomingMessage) -> None:
    """Handle an acknowledged platform message and send the replies; retries while the DB is down.

    A message the platform has been told we accepted must not be lost: database outages are retried
    with backoff; a platform retry of the same message id is answered by the dispatcher's dedupe.
    """
    for attempt, delay in enumerate((*DB_RETRY_DELAYS, None)):
        try:
            result = await rt.dispatcher.handle(msg)
            break
        except DatabaseUnavailable:
            if delay is None:
                logger.error(
                    "giving up on message channel=%s chat=%s id=%s after %d attempts",
                    msg.channel,
                    mask_id(msg.chat_id),
                    msg.message_id,
                    attempt + 1,
                )
                raise
            await asyncio.sleep(delay)
    if result.duplicate:
        return
    await channel.send(msg.chat_id, result.replies)
