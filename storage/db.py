"""Engines and sessions: aiosqlite (WAL, immediate transactions) by default, asyncpg in production."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE: a writer takes the lock up front
        # instead of failing with "database is locked" when it upgrades from a read.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # On the driver in one hand-off to aiosqlite's thread (a cursor through SQLAlchemy takes three);
        # its errors ("database is locked") raised as SQLAlchemy's, as through a cursor.
        try:
            conn.connection.dbapi_connection.run_async(
                lambda driver: driver.execute_fetchall("BEGIN IMMEDIATE")
            )
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance("BEGIN IMMEDIATE", (), error, sqlite3.Error) from error

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        # Sessions end the transactions they begin; roll back only one left open (pool_reset_on_return
        # is off: its unconditional rollback was another hand-off to aiosqlite's thread a turn).
        if dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()


# A pooled connection idle for longer than this is pinged before use (the server may have restarted
# meanwhile). A busy pool is not: a ping per checkout is a round trip per unit of work.
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for connections that sat idle only."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool replaces this connection and every one older (they went with the server).
            raise exc.InvalidatePoolError(str(error)) from error


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url``; makes the SQLite file's folder when needed."""
    path = sqlite_path(url)
    if url.startswith("sqlite"):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite runs one write transaction at a time anyway (BEGIN IMMEDIATE), and
        # waiting for the pool is first come, first served, where waiting for SQLite's lock is its
        # busy handler sleeping up to 100 ms between tries: seconds of latency under load.
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"timeout": 15},
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            pool_reset_on_return=None,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
    _ping_when_idle(engine)
    return engine


class Database:
    """One engine and its session factory; ``session()`` is one unit of work."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, echo=echo)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL (advisory locks and SKIP LOCKED available)."""
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def dialect_of(session: AsyncSession) -> str:
    """The session's database dialect name (``sqlite`` or ``postgresql``)."""
    return session.get_bind().dialect.name


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` from text parts."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_ADVISORY_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


async def advisory_xact_lock(session: AsyncSession, *parts: str) -> None:
    """Hold a PostgreSQL advisory lock on ``parts`` until the transaction ends (no-op on SQLite)."""
    if dialect_of(session) == "postgresql":
        # On the connection: through the ORM session a text SELECT builds an ORM result (and flushes).
        conn = await session.connection()
        await conn.execute(_ADVISORY_XACT_LOCK, {"k": advisory_key(*parts)})
