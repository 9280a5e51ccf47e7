"""Units of work for back ends that keep data in our database, joined to the caller's when there is one.

A turn runs in one transaction (on SQLite it holds the write lock from its first statement). A back end
that opened a second transaction from inside the turn would wait for that lock until it timed out, and
a complaint it stored would be committed apart from the turn. So the dispatcher (or any caller that
holds a session) wraps its calls in :func:`joined`, and :func:`unit_of_work` hands out that session
instead of opening another one; outside such a block each call is its own transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.db import Database


@dataclass(slots=True)
class _Joined:
    session: AsyncSession
    active: bool = True


_current: ContextVar[_Joined | None] = ContextVar("pontibot_joined_session", default=None)


@contextmanager
def joined(session: AsyncSession) -> Iterator[AsyncSession]:
    """Inside this block, database-backed back ends work in ``session`` (the caller commits it)."""
    holder = _Joined(session)
    token = _current.set(holder)
    try:
        yield session
    finally:
        # Tasks spawned inside the block copied the variable; they must not use a finished session.
        holder.active = False
        _current.reset(token)


def joined_session(db: Database) -> AsyncSession | None:
    """The caller's session on ``db`` when one is joined and still open, else None."""
    holder = _current.get()
    if holder is None or not holder.active:
        return None
    bind = holder.session.bind
    if not isinstance(bind, AsyncEngine) or bind.url != db.engine.url:
        return None
    return holder.session


@asynccontextmanager
async def unit_of_work(db: Database) -> AsyncIterator[AsyncSession]:
    """The joined session when there is one (flushed, not committed), else a fresh transaction."""
    session = joined_session(db)
    if session is not None:
        yield session
        await session.flush()
        return
    async with db.session() as own:
        yield own
