"""The statements of one dispatcher turn, run on the database driver inside the session's transaction.

A turn runs a handful of small statements, hundreds of times a second. Through SQLAlchemy's
execution layer each costs two to five times the statement itself: on PostgreSQL 190 µs of CPU
against asyncpg's 70 µs; on SQLite 410 µs against 85 µs, because the aiosqlite adapter hands the
cursor to aiosqlite's thread four times a statement (create, execute, fetch, close) where one hand-off
does (figures: docs/BENCHMARKS.md). So these statements go to the driver connection of the session
directly, in the same transaction as everything else the turn does through the ORM.

What stays the same as through SQLAlchemy: values are converted by the same column types
(``storage.types``: JSON, aware UTC datetimes), and a driver error is raised as SQLAlchemy's
``DBAPIError`` subclass with the connection invalidated when it died, so that callers (the
dispatcher's "database unavailable" handling, its retry on a fresh connection) see no difference.

The statements are plain SQL that both SQLite and PostgreSQL accept; on PostgreSQL the writes of one
phase are sent together as one statement of data-modifying ``WITH`` queries (:func:`combined`), which
SQLite lacks. ``:name`` parameters are turned into asyncpg's ``$n`` once per statement.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import TypeEngine

from storage import repositories as repo
from storage.db import advisory_xact_lock
from storage.types import JSONType, UTCDateTime, utcnow

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Statement:
    """SQL with ``:name`` parameters, the column types of the parameters that need converting, and
    of the result columns (by position) that do."""

    sql: str
    binds: Mapping[str, TypeEngine[Any]]
    results: Mapping[int, TypeEngine[Any]]


@dataclass(frozen=True)
class _Prepared:
    """A statement made ready for one dialect: driver SQL, parameter order, converters."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A resident and their conversation as one turn reads them (plain values, not tracked objects)."""

    resident_id: int
    channel: str
    language: str
    display_name: str | None
    source: str | None
    conversation_id: int
    state: str | None
    slots: dict[str, Any]
    status: str
    turns: int
    language_explicit: bool = False  # the resident chose ``language``: detection does not change it


_JSON: TypeEngine[Any] = JSONType
_TIME: TypeEngine[Any] = UTCDateTime()

LOAD = Statement(
    "SELECT r.id, r.language, r.display_name, r.source, c.id, c.state, c.slots, c.status, c.turns,"
    " r.language_explicit,"
    " EXISTS (SELECT 1 FROM processed_messages p"
    " WHERE p.channel = :channel AND p.chat_id = :external_id AND p.message_id = :message_id)"
    " FROM residents r JOIN conversations c ON c.resident_id = r.id"
    " WHERE r.channel = :channel AND r.external_id = :external_id",
    {},
    {6: _JSON},
)
_MESSAGE_COLUMNS = (
    "conversation_id",
    "direction",
    "kind",
    "text",
    "payload",
    "data",
    "intent",
    "confidence",
    "platform_message_id",
    "created_at",
)
TOUCH_RESIDENT = Statement(
    "UPDATE residents SET last_inbound_at = :at, unreachable = false WHERE id = :resident_id",
    {"at": _TIME},
    {},
)
# The state and slots a turn computed from what it loaded are not written back when the turn erased
# the resident (``flows.privacy``): the erasure wins, whatever the step kept (memory such as
# ``last_ticket`` survives ``clear_slots``). The resident row says so, as the flows left it.
ADVANCE_CONVERSATION = Statement(
    "UPDATE conversations SET state = :state, slots = :slots, turns = turns + 1,"
    " version = version + 1, updated_at = :at WHERE id = :conversation_id"
    " AND NOT EXISTS (SELECT 1 FROM residents r"
    " WHERE r.id = conversations.resident_id AND r.erased_at IS NOT NULL)",
    {"slots": _JSON, "at": _TIME},
    {},
)
# The chat is read from the resident row as it is at the end of the turn, not taken from the message:
# a turn that erased the resident (``flows.privacy``) has replaced their chat id there already.
RECORD_RESPONSE = Statement(
    "INSERT INTO processed_messages (channel, chat_id, message_id, conversation_id, response, created_at)"
    " VALUES (:channel, (SELECT r.external_id FROM conversations c JOIN residents r ON r.id = c.resident_id"
    " WHERE c.id = :conversation_id), :message_id, :conversation_id, :response, :at)"
    " ON CONFLICT (channel, chat_id, message_id) DO UPDATE"
    " SET conversation_id = excluded.conversation_id, response = excluded.response",
    {"response": _JSON, "at": _TIME},
    {},
)


_MESSAGES: dict[int, Statement] = {}
_COMBINED: dict[tuple[str, ...], Statement] = {}


def insert_messages(count: int) -> Statement:
    """One INSERT of ``count`` transcript lines (parameters ``<column>_<row>``), built once per count."""
    statement = _MESSAGES.get(count)
    if statement is None:
        rows = ", ".join(
            "(" + ", ".join(f":{column}_{row}" for column in _MESSAGE_COLUMNS) + ")" for row in range(count)
        )
        binds: dict[str, TypeEngine[Any]] = {}
        for row in range(count):
            binds.update({f"data_{row}": _JSON, f"created_at_{row}": _TIME})
        sql = f"INSERT INTO messages ({', '.join(_MESSAGE_COLUMNS)}) VALUES {rows}"
        statement = _MESSAGES[count] = Statement(sql, binds, {})
    return statement


def message_params(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The parameters of :func:`insert_messages` for ``rows`` (``repositories.message_row``)."""
    return {f"{column}_{index}": row[column] for index, row in enumerate(rows) for column in _MESSAGE_COLUMNS}


def combined(statements: Sequence[Statement]) -> Statement:
    """PostgreSQL: data-modifying statements as one, all but the last as ``WITH`` queries (their
    parameters prefixed ``s<i>_``): one round trip instead of one each. They run on one snapshot,
    so they must not depend on each other's effects (here: each writes its own table)."""
    key = tuple(statement.sql for statement in statements)
    found = _COMBINED.get(key)
    if found is None:
        parts: list[str] = []
        binds: dict[str, TypeEngine[Any]] = {}
        for index, statement in enumerate(statements):
            prefix = f"s{index}_"
            parts.append(_PARAM.sub(lambda match: f":{prefix}{match.group(1)}", statement.sql))  # noqa: B023
            binds.update({prefix + name: type_ for name, type_ in statement.binds.items()})
        withs = ", ".join(f"s{index} AS ({sql})" for index, sql in enumerate(parts[:-1]))
        found = _COMBINED[key] = Statement(f"WITH {withs} {parts[-1]}", binds, {})
    return found


def _processor(kind: str, type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    impl = type_.dialect_impl(dialect)
    if kind == "bind":
        return impl.bind_processor(dialect)
    return impl.result_processor(dialect, None)


_PREPARED: dict[tuple[str, str], _Prepared] = {}


def prepare(statement: Statement, dialect: Dialect) -> _Prepared:
    """The statement for ``dialect`` (cached): positional ``$n`` for asyncpg, named for sqlite3."""
    key = (statement.sql, dialect.name)
    prepared = _PREPARED.get(key)
    if prepared is None:
        names: list[str] = []
        if dialect.name == "postgresql":

            def number(match: re.Match[str]) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            sql = _PARAM.sub(number, statement.sql)
        else:
            sql = statement.sql
        binds = tuple(
            (name, proc)
            for name, type_ in statement.binds.items()
            if (proc := _processor("bind", type_, dialect)) is not None
        )
        results = tuple(
            (index, proc)
            for index, type_ in statement.results.items()
            if (proc := _processor("result", type_, dialect)) is not None
        )
        prepared = _PREPARED[key] = _Prepared(sql, tuple(names), binds, results)
    return prepared


class TurnStore:
    """A turn's unit of work: the one storage API the dispatcher calls for a turn.

    Its own statements run on the driver connection of the turn's session (few round trips); what
    flows change through the ORM on that session (``ctx.services.session``) is flushed before the
    turn's last writes (:meth:`finish`), so the caller never orders the two.
    """

    def __init__(
        self, session: AsyncSession, conn: AsyncConnection, adapted: Any, driver: Any, now: datetime
    ) -> None:
        self.session = session
        self.now = now  # the turn's time: its transcript lines and records carry it
        self._conn = conn
        self._adapted = adapted  # SQLAlchemy's adapter around the driver (translates its errors)
        self._driver = driver
        self.dialect = conn.dialect
        self._postgres = self.dialect.name == "postgresql"
        # With the engine's statement log on (``database.echo``, or its logger at INFO), these are
        # logged there too, like every statement that goes through SQLAlchemy.
        self._log = conn.sync_engine.logger if conn.sync_engine.logger.isEnabledFor(logging.INFO) else None

    @classmethod
    async def open(
        cls, session: AsyncSession, *, lock: Sequence[str], now: datetime | None = None
    ) -> TurnStore:
        """The store on ``session``'s connection, its transaction begun and, on PostgreSQL, the
        advisory lock on ``lock`` held (as ``storage.db.advisory_xact_lock``) until it ends; ``now``
        is the turn's time (an injected clock's in tests; the current time by default)."""
        # Through SQLAlchemy: its asyncpg adapter sends BEGIN with the first statement it runs.
        await advisory_xact_lock(session, *lock)
        conn = await session.connection()
        fairy = await conn.get_raw_connection()
        store = cls(session, conn, fairy.dbapi_connection, fairy.driver_connection, now or utcnow())
        if store._postgres and not store._driver.is_in_transaction():
            raise RuntimeError("the turn's PostgreSQL transaction has not begun")  # pragma: no cover
        return store

    # -- the turn's statements -------------------------------------------------------------------

    async def load_conversation(
        self,
        *,
        channel: str,
        external_id: str,
        display_name: str | None = None,
        language: str = "id",
        message_id: str | None = None,
    ) -> tuple[ConversationRecord, bool]:
        """The resident behind ``(channel, external_id)`` with their conversation, in one query, and
        whether the platform message ``message_id`` of this chat was handled before (:meth:`finish`
        records it; ids are unique per chat, not per channel).

        Resident and conversation are created on first contact (a few statements more, once).
        """
        params = {"channel": channel, "external_id": external_id, "message_id": message_id or ""}
        rows = await self._fetch(LOAD, params)
        if not rows:
            resident = await repo.get_or_create_resident(
                self.session,
                channel=channel,
                external_id=external_id,
                display_name=display_name,
                language=language,
            )
            await repo.get_or_create_conversation(self.session, resident=resident)
            rows = await self._fetch(LOAD, params)
        row = rows[0]
        record = ConversationRecord(
            resident_id=row[0],
            channel=channel,
            language=row[1],
            display_name=row[2],
            source=row[3],
            conversation_id=row[4],
            state=row[5],
            slots=dict(row[6] or {}),
            status=row[7],
            turns=row[8],
            language_explicit=bool(row[9]),
        )
        return record, message_id is not None and bool(row[10])

    async def earlier_answer(
        self, *, channel: str, chat_id: str, message_id: str
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The replies recorded for a handled message of this chat (a platform retry gets them again),
        and the conversation it belonged to."""
        processed = await repo.get_processed_message(
            self.session, channel=channel, chat_id=chat_id, message_id=message_id
        )
        if processed is None:
            return [], None
        return list((processed.response or {}).get("replies", [])), processed.conversation_id

    async def update_resident(self, resident_id: int, **values: Any) -> None:
        """Change the resident's columns (language, language_explicit, source) in this turn."""
        await repo.update_resident(self.session, resident_id=resident_id, values=values)

    def line(self, **fields: Any) -> dict[str, Any]:
        """One transcript line's column values at the turn's time (``repositories.message_row``)."""
        fields.setdefault("created_at", self.now)
        return repo.message_row(**fields)

    async def store_inbound(self, row: Mapping[str, Any], *, resident_id: int, at: datetime) -> None:
        """The resident's message into the transcript (``repositories.message_row``); the resident
        wrote at ``at`` (WhatsApp's window starts there) and can be written to again."""
        await self._write(
            [
                (TOUCH_RESIDENT, {"resident_id": resident_id, "at": at}),
                (insert_messages(1), message_params([row])),
            ]
        )

    async def finish(
        self,
        *,
        conversation_id: int,
        advance: tuple[str | None, Mapping[str, Any]] | None,
        rows: Sequence[Mapping[str, Any]],
        response: tuple[str, str, Sequence[Mapping[str, Any]]] | None,
    ) -> None:
        """What a turn leaves: the conversation's new ``(state, slots)`` (one more turn, one more
        version), the replies' transcript lines, and ``(channel, message_id, replies)`` recorded as
        handled in the conversation's chat (a platform retry of it is answered the same).

        What the flows changed through the ORM is flushed first: the turn's own writes come last.
        """
        await self.session.flush()
        parts: list[tuple[Statement, Mapping[str, Any]]] = []
        if advance is not None:
            state, slots = advance
            params = {
                "conversation_id": conversation_id,
                "state": state,
                "slots": dict(slots),
                "at": self.now,
            }
            parts.append((ADVANCE_CONVERSATION, params))
        if rows:
            parts.append((insert_messages(len(rows)), message_params(rows)))
        if response is not None:
            channel, message_id, replies = response
            params = {
                "channel": channel,
                "message_id": message_id,
                "conversation_id": conversation_id,
                "response": {"replies": list(replies)},
                "at": self.now,
            }
            parts.append((RECORD_RESPONSE, params))
        await self._write(parts)

    async def _write(self, parts: Sequence[tuple[Statement, Mapping[str, Any]]]) -> None:
        """Data-modifying statements, in order; one round trip on PostgreSQL (:func:`combined`)."""
        if self._postgres and len(parts) > 1:
            merged = {
                f"s{index}_{name}": value for index, (_, p) in enumerate(parts) for name, value in p.items()
            }
            await self._execute(combined([statement for statement, _ in parts]), merged)
            return
        for statement, params in parts:
            await self._execute(statement, params)

    # -- running statements on the driver --------------------------------------------------------

    def _args(self, prepared: _Prepared, params: Mapping[str, Any]) -> Any:
        values = dict(params)
        for name, proc in prepared.binds:
            values[name] = proc(values[name])
        if self._postgres:
            return tuple(values[name] for name in prepared.names)
        return values

    async def _fetch(self, statement: Statement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        prepared = prepare(statement, self.dialect)
        rows = [tuple(row) for row in await self._run(prepared, statement, params, fetch=True)]
        if not prepared.results:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for index, proc in prepared.results:
                values[index] = proc(values[index])
            converted.append(tuple(values))
        return converted

    async def _execute(self, statement: Statement, params: Mapping[str, Any]) -> None:
        await self._run(prepare(statement, self.dialect), statement, params, fetch=False)

    async def _run(
        self, prepared: _Prepared, statement: Statement, params: Mapping[str, Any], *, fetch: bool
    ) -> Any:
        args = self._args(prepared, params)
        if self._log is not None:
            self._log.info("%s\n[on the driver] %r", prepared.sql, args)
        if not self._postgres:  # one hand-off to aiosqlite's thread: execute and fetch there
            return await self._call(
                statement, params, lambda: self._driver.execute_fetchall(prepared.sql, args)
            )
        if fetch:
            return await self._call(statement, params, lambda: self._driver.fetch(prepared.sql, *args))
        return await self._call(statement, params, lambda: self._driver.execute(prepared.sql, *args))

    async def _call(self, statement: Statement, params: Any, run: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await run()
        except Exception as error:
            raise await self._translated(statement, params, error) from error

    async def _translated(self, statement: Statement, params: Any, error: Exception) -> Exception:
        """The driver's error as SQLAlchemy raises it; a dead connection is invalidated first."""
        dbapi = self.dialect.loaded_dbapi
        try:
            self._adapted._handle_exception(error)  # raises the DBAPI form of a driver error
        except dbapi.Error as adapted:
            dbapi_error: Exception = adapted
        except Exception:
            dbapi_error = error
        else:  # pragma: no cover - _handle_exception always raises
            dbapi_error = error
        if not isinstance(dbapi_error, dbapi.Error):
            return error  # not a database error (a bug of ours, a cancellation): unchanged
        disconnected = self.dialect.is_disconnect(dbapi_error, self._adapted, None)
        if disconnected:
            await self._conn.invalidate(dbapi_error)
        return DBAPIError.instance(
            statement.sql,
            params,
            dbapi_error,
            dbapi.Error,
            connection_invalidated=disconnected,
            dialect=self.dialect,
        )
