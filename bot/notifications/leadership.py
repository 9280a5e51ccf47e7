"""Leadership: at most one process per database runs the scheduler.

On PostgreSQL a session advisory lock held on a connection of its own; on SQLite an exclusive ``flock``
on ``<database file>.leader``. Both vanish when the process dies, even by SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, advisory_key, sqlite_path

logger = logging.getLogger(__name__)

LEADER_LOCK = "pontibot-scheduler-leader"
LEADER_CHECK_SECONDS = 5.0
# Server-side TCP keepalives on the leader's connection: a dead peer is found after 5 + 3 x 2 = 11 s,
# then another worker takes over at its next try (leader_retry_seconds): well within 30 s.
LEADER_KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}


class Leadership(Protocol):
    """Who may run the scheduler: at most one holder per database at a time."""

    async def acquire(self) -> bool:
        """Become the leader if nobody is; False when another process leads."""
        ...

    async def holds(self) -> bool:
        """True while still the leader (a lost database connection ends it)."""
        ...

    async def release(self) -> None:
        """Stop leading."""
        ...


class PostgresLeadership:
    """A session advisory lock on a dedicated autocommit connection (no transaction is kept open)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.key = advisory_key(LEADER_LOCK)
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        """Take the advisory lock without waiting."""
        conn = await self.db.engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            result = await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            got = bool(result.scalar_one())
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        try:
            # A leader whose machine vanishes sends no FIN: make the server notice the dead peer (and
            # free the lock) within seconds, not after the kernel's two-hour keepalive default.
            for name, value in LEADER_KEEPALIVES.items():
                await conn.execute(text(f"SET {name} = {value}"))
        except Exception:
            await conn.close()
            raise
        self._conn = conn
        return True

    async def holds(self) -> bool:
        """The lock lives as its connection: ask the connection."""
        if self._conn is None:
            return False
        try:
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), LEADER_CHECK_SECONDS)
        except Exception:
            logger.warning("scheduler: the leader's database connection is gone", exc_info=True)
            return False
        return True

    async def release(self) -> None:
        """Unlock and close the connection (closing alone would release it too)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except Exception:
            logger.warning("scheduler: could not unlock cleanly; closing the connection", exc_info=True)
        finally:
            await conn.close()


class FileLeadership:
    """An exclusive ``flock`` beside the SQLite file (released by the kernel if the process dies)."""

    def __init__(self, database_file: Path | None) -> None:
        self.path = database_file.with_name(database_file.name + ".leader") if database_file else None
        self._fd: int | None = None

    async def acquire(self) -> bool:
        """Lock the leader file without waiting (an in-memory database has one process: always)."""
        if self.path is None or sys.platform == "win32":
            return True
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    async def holds(self) -> bool:
        """A held flock cannot be lost while the process lives."""
        return True

    async def release(self) -> None:
        """Unlock (closing the descriptor releases the lock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def leadership_for(db: Database) -> Leadership:
    """Advisory lock on PostgreSQL, a file lock on SQLite."""
    if db.is_postgres:
        return PostgresLeadership(db)
    return FileLeadership(sqlite_path(db.url))
