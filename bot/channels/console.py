"""Console channel: talk to the bot in a terminal (``pontibot chat``), same engine as every channel."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from bot.channels.base import numbered_options, pick_numbered
from flows.messages import Button, Channel, IncomingMessage, Reply


class ConsoleChannel:
    """Turns typed lines into messages and replies into printable text with numbered options."""

    channel = Channel.CONSOLE

    def __init__(self, chat_id: str, lang: str = "id") -> None:
        self.chat_id = chat_id
        self.lang = lang
        self._last_buttons: tuple[Button, ...] = ()

    def incoming(self, line: str) -> IncomingMessage:
        """The message for one typed line; a number picks one of the options just shown."""
        chosen = pick_numbered(line, self._last_buttons)
        return IncomingMessage(
            channel=Channel.CONSOLE,
            chat_id=self.chat_id,
            user_id=self.chat_id,
            message_id=uuid.uuid4().hex,
            text=chosen.title if chosen else line,
            payload=chosen.payload if chosen else None,
        )

    def render(self, replies: Sequence[Reply]) -> str:
        """Replies as terminal text; remembers the last options so "2" can choose one."""
        blocks = []
        for reply in replies:
            block = reply.text
            if reply.venue is not None:
                v = reply.venue
                block += f"\n📍 {v.title}, {v.address} — https://maps.google.com/?q={v.lat},{v.lon}"
            if reply.buttons:
                block += "\n" + numbered_options(reply.buttons, lang=self.lang)
                self._last_buttons = reply.buttons
            blocks.append(block)
        return "\n\n".join(blocks)
