"""Shared fixtures: a migrated database (SQLite per test, or PostgreSQL), settings, the NLU, a live server,
the fake Telegram and Twilio servers.

Set PONTIBOT_TEST_DATABASE_URL=postgresql+asyncpg://… to run the database tests against PostgreSQL
(``.ci/run`` does, after the SQLite run).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.app import create_app
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from bot.wiring import build_runtime, close_runtime
from storage.db import Database
from storage.migrate import upgrade
from storage.schema import metadata
from tests.support import free_port, serve
from tests.support.fake_telegram import FakeTelegram
from tests.support.fake_twilio import FakeTwilio

__all__ = ["REPO", "LiveServer", "free_port"]  # what test modules import from here

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("PONTIBOT_TEST_DATABASE_URL", "")


def pytest_report_header(config: pytest.Config) -> str:
    return f"pontibot database under test: {PG_URL or 'SQLite (per-test file)'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the database, so CI can run exactly those again on PostgreSQL."""
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_migrated() -> str:
    if not PG_URL:
        pytest.skip("PONTIBOT_TEST_DATABASE_URL is not set")

    async def reset() -> None:
        db = Database(PG_URL)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await db.dispose()

    asyncio.run(reset())
    upgrade(PG_URL)
    return PG_URL


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database for this test."""
    if PG_URL:
        url = request.getfixturevalue("_postgres_migrated")
        tables = ", ".join(t.name for t in reversed(metadata.sorted_tables))

        async def truncate() -> None:
            db = Database(url)
            try:
                async with db.engine.begin() as conn:
                    await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            finally:
                await db.dispose()

        asyncio.run(truncate())
        yield url
        return
    template = request.getfixturevalue("_sqlite_template")
    path = tmp_path / "pontibot.db"
    shutil.copyfile(template, path)
    yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """An open Database on the test's database."""
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def nlu_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the test session's trained NLU model lives (trained once per session)."""
    return tmp_path_factory.mktemp("nlu")


@pytest.fixture(scope="session")
def nlu_parser(nlu_model_dir: Path):  # type: ignore[no-untyped-def]
    """The real embedded parser, trained once for the whole session."""
    from nlu.pipeline import build_parser

    return build_parser("embedded", threshold=0.3, model_dir=nlu_model_dir)


def build_settings(
    *,
    database_url: str,
    nlu_model_dir: Path | str,
    media_dir: Path,
    environ: dict[str, str] | None = None,
    **sections: Any,
) -> Settings:
    """Repository config.yml on a test's database, model and media directory, plus ``environ`` and sections.

    No secrets come from the host; the ``database``, ``nlu`` and ``server`` sections given are merged in.
    """
    sections["database"] = {"url": database_url, **sections.get("database", {})}
    sections["nlu"] = {"model_dir": str(nlu_model_dir), **sections.get("nlu", {})}
    sections["server"] = {"media_dir": str(media_dir), **sections.get("server", {})}
    return load_settings(REPO / "config.yml", environ=environ or {}, **sections)


@pytest.fixture
def make_settings(database_url: str, nlu_model_dir: Path, tmp_path: Path) -> Callable[..., Settings]:
    """``make_settings(environ=..., **sections)``: settings on this test's database, model and media dir."""

    def make(**overrides: Any) -> Settings:
        return build_settings(
            database_url=database_url, nlu_model_dir=nlu_model_dir, media_dir=tmp_path / "media", **overrides
        )

    return make


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """What a suite or test changes in ``settings``: ``environ`` and sections (override or parametrize)."""
    return {}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], settings_overrides: dict[str, Any]) -> Settings:
    """Settings for a test: repository config.yml, this test's database, no secrets from the host."""
    return make_settings(**settings_overrides)


@pytest.fixture
async def runtime(settings: Settings, nlu_parser) -> AsyncIterator[Runtime]:  # type: ignore[no-untyped-def]
    """An open runtime (database, parser, engine, dispatcher) on the test database."""
    rt = await build_runtime(settings, parser=nlu_parser)
    yield rt
    await close_runtime(rt)


@dataclass
class LiveServer:
    """The real ASGI app served by uvicorn on 127.0.0.1 for this test."""

    url: str
    runtime: Runtime
    client: httpx.AsyncClient


@asynccontextmanager
async def serve_runtime(settings: Settings, runtime: Runtime) -> AsyncIterator[LiveServer]:
    """Serve the app for ``runtime`` over real HTTP on a free port, with a client for it."""
    async with (
        serve(create_app(settings, runtime=runtime)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield LiveServer(url, runtime, client)


@pytest.fixture
async def live_server(settings: Settings, runtime: Runtime) -> AsyncIterator[LiveServer]:
    """Serve the app over real HTTP and hand out a client for it."""
    async with serve_runtime(settings, runtime) as server:
        yield server


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    """A running fake Bot API server."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A running fake Twilio API server."""
    with FakeTwilio() as fake:
        yield fake
