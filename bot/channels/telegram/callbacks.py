"""Button data on Telegram: ``callback_data`` holds at most 64 bytes, so longer payloads travel as tokens."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from flows.messages import Channel
from storage import repositories as repo
from storage.db import Database

CALLBACK_DATA_LIMIT = 64
CALLBACK_TOKEN_PREFIX = "#h:"  # noqa: S105 - marks hashed callback data
CALLBACK_MEMORY = 10_000
TRANSCRIPT_LOOKBACK = 50


def callback_token(payload: str) -> str:
    """A short, stable stand-in for a payload too long for ``callback_data`` (64 bytes)."""
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return f"{CALLBACK_TOKEN_PREFIX}{digest[:32]}"


def callback_data_for(payload: str) -> str:
    """The ``callback_data`` of a button: the payload itself when it fits, else its token."""
    if len(payload.encode()) <= CALLBACK_DATA_LIMIT and not payload.startswith(CALLBACK_TOKEN_PREFIX):
        return payload
    return callback_token(payload)


class CallbackPayloads:
    """Remembers the long payloads behind the tokens sent, and finds them again after a restart."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._payloads: OrderedDict[str, str] = OrderedDict()

    def data_for(self, payload: str) -> str:
        """The ``callback_data`` of a button, remembering the payload when it travels as a token."""
        data = callback_data_for(payload)
        if data != payload:
            self._payloads[data] = payload
            self._payloads.move_to_end(data)
            while len(self._payloads) > CALLBACK_MEMORY:
                self._payloads.popitem(last=False)
        return data

    def forget(self) -> None:
        """Drop what is remembered in memory (as a restart does)."""
        self._payloads.clear()

    async def resolve(self, chat_id: str, data: str) -> str | None:
        """The payload behind ``callback_data``: itself, or for a token the long payload it stands for.

        Tokens are remembered in memory when sent; after a restart the payload is found again in the
        conversation's transcript (every reply is stored with its buttons before it is sent), by
        hashing the recent buttons' payloads.
        """
        if not data.startswith(CALLBACK_TOKEN_PREFIX):
            return data
        if (known := self._payloads.get(data)) is not None:
            return known
        async with self._db.session() as session:
            rows = await repo.recent_reply_data(
                session, channel=Channel.TELEGRAM.value, external_id=chat_id, limit=TRANSCRIPT_LOOKBACK
            )
        for row in rows:
            for button in (row or {}).get("buttons", []):
                payload = str(button.get("payload", ""))
                if callback_token(payload) == data:
                    return payload
        return None
