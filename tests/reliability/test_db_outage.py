"""The database goes away for a few seconds: acknowledged messages are retried, none is lost.

PostgreSQL: the bot reaches the server through a TCP proxy on 127.0.0.1, which is stopped (every
connection cut, new ones refused) and started again. SQLite: another process-like connection holds
the write lock (``BEGIN EXCLUSIVE``) so every write fails with "database is locked"; the bot's busy
timeout is shortened so the outage is seen at once instead of after its 15 s of patience.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import event, select

from storage.db import sqlite_path
from storage.models import Message, ProcessedMessage
from tests.bot.channels.conftest import load_update
from tests.conftest import free_port
from tests.reliability.conftest import count

HEADERS = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token_for-tests"}
OUTAGE_SECONDS = 2.5


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 that can be stopped (cutting every connection) and started again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


class Outage:
    """Takes the database away and gives it back, the way the URL's kind of database allows."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.proxy: TcpProxy | None = None
        self._lock: sqlite3.Connection | None = None
        if database_url.startswith("postgresql"):
            parts = urlsplit(database_url)
            self.proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
            netloc = parts.netloc.rsplit("@", 1)
            userinfo = f"{netloc[0]}@" if len(netloc) == 2 else ""
            self.url = urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{self.proxy.port}"))

    def prepare(self, rt: Any) -> None:
        """SQLite: fail fast on a held lock (new connections get a 100 ms busy timeout)."""
        if self.proxy is None:

            @event.listens_for(rt.db.engine.sync_engine, "connect")
            def _impatient(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA busy_timeout=100")
                cursor.close()

    async def down(self, rt: Any) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
            return
        await rt.db.engine.dispose()
        path = sqlite_path(self.url)
        assert path is not None
        self._lock = sqlite3.connect(path, timeout=5, isolation_level=None)
        self._lock.execute("BEGIN EXCLUSIVE")

    async def up(self) -> None:
        if self.proxy is not None:
            await self.proxy.start()
            return
        assert self._lock is not None
        self._lock.execute("ROLLBACK")
        self._lock.close()
        self._lock = None


@pytest.fixture
async def outage(database_url: str) -> AsyncIterator[Outage]:
    kept = Outage(database_url)
    if kept.proxy is not None:
        await kept.proxy.start()
    yield kept
    if kept.proxy is not None:
        await kept.proxy.stop()
    elif kept._lock is not None:
        await kept.up()


@pytest.fixture
def settings_overrides(outage: Outage) -> dict[str, Any]:
    """The test settings, with the database reached the way the outage can cut."""
    return {"database": {"url": outage.url}}


async def test_messages_acknowledged_during_an_outage_are_retried_and_none_is_lost(
    serve_telegram_bot: Any, outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.conversation.dispatcher")
    async with serve_telegram_bot(mode="webhook") as bot:
        rt = bot.runtime
        outage.prepare(rt)
        first = await bot.client.post(
            "/webhooks/telegram", json=load_update("text", update_id=8000), headers=HEADERS
        )
        assert first.status_code == 200
        await bot.channel.drain(grace=10)
        assert len(bot.fake.sent()) == 1

        await outage.down(rt)
        during = []
        for update_id, chat in ((8001, 501), (8002, 502), (8003, 501)):
            update = load_update("text", update_id=update_id, chat_id=chat)
            during.append(await bot.client.post("/webhooks/telegram", json=update, headers=HEADERS))
        await asyncio.sleep(OUTAGE_SECONDS)
        assert [r.status_code for r in during] == [200, 200, 200]  # acknowledged without the database
        assert len(bot.fake.sent()) == 1  # nothing processed while it is down …
        assert any("database unavailable" in r.getMessage() for r in caplog.records)  # … but tried
        await outage.up()
        await bot.channel.drain(grace=40)

        assert len(bot.fake.sent()) == 4
        assert await count(rt, ProcessedMessage) == 4
        async with rt.db.session() as session:
            inbound = (
                (await session.execute(select(Message).where(Message.direction == "in"))).scalars().all()
            )
        assert len(inbound) == 4
