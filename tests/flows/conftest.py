"""Conversation helpers: a resident chatting with the bot over the web chat HTTP API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flows.texts import Texts
from tests.conftest import LiveServer

WIB = ZoneInfo("Asia/Pontianak")
TEXTS = Texts.load()


class Chat:
    """One resident's web chat session; each call is one message and returns the bot's replies."""

    def __init__(self, server: LiveServer, session_id: str) -> None:
        self.server = server
        self.session_id = session_id

    async def _send(self, **body: Any) -> list[dict[str, Any]]:
        response = await self.server.client.post("/api/chat", json={"session_id": self.session_id, **body})
        assert response.status_code == 200, response.text
        replies: list[dict[str, Any]] = response.json()["replies"]
        assert replies, "the bot must always answer"
        return replies

    async def say(self, text: str) -> list[dict[str, Any]]:
        """The resident types ``text``."""
        return await self._send(text=text)

    async def press(self, payload: str) -> list[dict[str, Any]]:
        """The resident presses the button with ``payload``."""
        return await self._send(payload=payload)

    async def share_location(self, lat: float, lon: float) -> list[dict[str, Any]]:
        """The resident shares a map pin."""
        return await self._send(location={"lat": lat, "lon": lon})

    def at(self, moment: datetime) -> None:
        """Sets the bot's clock (WIB) for the following messages."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=WIB)
        self.server.runtime.dispatcher.clock = lambda: aware


@pytest.fixture
def chat(live_server: LiveServer) -> Callable[[str], Chat]:
    """A factory of resident chat sessions on the live server."""
    return lambda session_id="resident-1": Chat(live_server, session_id)


def text_of(replies: list[dict[str, Any]]) -> str:
    """Every reply's text, joined (what the resident reads)."""
    return "\n".join(reply["text"] for reply in replies)


def payloads(replies: list[dict[str, Any]]) -> list[str]:
    """The payloads of every button offered."""
    return [button["payload"] for reply in replies for button in reply["buttons"]]


def say(key: str, lang: str = "id", **params: Any) -> list[str]:
    """Every wording of a text key (for asserting against the catalogue, never retyped strings)."""
    return TEXTS.variants(lang, key, **params)


def one_of(key: str, lang: str = "id", **params: Any) -> Callable[[str], bool]:
    """A predicate: the text contains one of the wordings of ``key``."""
    options = say(key, lang, **params)
    return lambda text: any(option in text for option in options)
