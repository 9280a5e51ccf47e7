"""How an accepted platform message reaches the dispatcher and its replies go back out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.channels.base import ChannelSender
from bot.conversation.dispatcher import DispatchResult
from bot.privacy import mask_id
from flows.messages import IncomingMessage
from storage.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

DB_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)

Handle = Callable[[IncomingMessage], Awaitable[DispatchResult]]
"""The dispatcher's ``handle``: one message in, the turn's result out."""


async def process_and_reply(handle: Handle, channel: ChannelSender, msg: IncomingMessage) -> None:
    """Handle an acknowledged platform message and send the replies; retries while the DB is down.

    A message the platform has been told we accepted must not be lost: database outages are retried
    with backoff; a platform retry of the same message id is answered by the dispatcher's dedupe.
    """
    for attempt, delay in enumerate((*DB_RETRY_DELAYS, None)):
        try:
            result = await handle(msg)
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
