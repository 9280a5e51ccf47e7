"""The scheduler: one leader per database, jobs persisted in our database, run by the runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.notifications.leadership import leadership_for
from bot.notifications.scheduler import LoopExecutor, build_scheduler, sync_url
from bot.settings import Settings
from bot.wiring import build_runtime, close_runtime, start_runtime
from storage.db import Database
from storage.notify_models import SchedulerJob
from tests.bot.notifications.conftest import notify_settings, permits_cursor
from tests.support import eventually, nothing_arrives
from tests.support.fake_telegram import FakeTelegram


@pytest.mark.parametrize(
    ("async_url", "expected"),
    [
        ("sqlite+aiosqlite:///var/pontibot.db", "sqlite:///var/pontibot.db"),
        ("sqlite+aiosqlite:////srv/p.db", "sqlite:////srv/p.db"),
        (
            "postgresql+asyncpg://bot:s3cr%40t@db:5432/pontibot",
            "postgresql+psycopg://bot:s3cr%40t@db:5432/pontibot",
        ),
    ],
)
def test_the_job_store_gets_a_synchronous_url_of_our_database(async_url: str, expected: str) -> None:
    assert sync_url(async_url) == expected


async def test_only_one_process_leads_a_database_at_a_time(database_url: str) -> None:
    one, two = Database(database_url), Database(database_url)
    first, second = leadership_for(one), leadership_for(two)
    try:
        took = await first.acquire()
        refused = await second.acquire()
        held = await first.holds()
        await first.release()
        took_over = await second.acquire()
        await second.release()
    finally:
        await one.dispose()
        await two.dispose()

    assert (took, refused, held, took_over) == (True, False, True, True)


async def stored_jobs(db: Database) -> dict[str, float | None]:
    async with db.session() as session:
        rows = (await session.execute(select(SchedulerJob))).scalars().all()
        return {row.id: row.next_run_time for row in rows}


async def test_the_runtime_persists_its_jobs_runs_them_and_replaces_them_on_restart(
    settings: Settings, fake_telegram: FakeTelegram, nlu_parser: Any, tmp_path: Path
) -> None:
    bot_settings = notify_settings(settings, fake_telegram, tmp_path)
    for _ in range(2):  # the second start replaces the jobs (same ids), it does not add more
        rt = await build_runtime(bot_settings, parser=nlu_parser)
        try:
            await start_runtime(rt)
            assert rt.notifications is not None
            await asyncio.wait_for(rt.notifications.leading.wait(), timeout=10)
            await eventually(lambda: permits_cursor(rt), what="the first poll stores the cursor")
            jobs = await stored_jobs(rt.db)
            scheduler = rt.notifications._scheduler
            assert scheduler is not None
            defaults = {
                (j.id, j.coalesce, j.misfire_grace_time, j.max_instances) for j in scheduler.get_jobs()
            }
        finally:
            await close_runtime(rt)
        assert set(jobs) == {"poll_permits", "poll_complaints", "dispatch_outbox", "submit_pending"}
        assert all(t is not None for t in jobs.values())
        assert defaults == {
            (name, True, 30, 1)
            for name in ("poll_permits", "poll_complaints", "dispatch_outbox", "submit_pending")
        }
    # After close the jobs stay stored for the next leader.
    db = Database(bot_settings.database_url)
    try:
        assert len(await stored_jobs(db)) == 4
    finally:
        await db.dispose()


async def test_a_second_runtime_on_the_same_database_waits_and_takes_over(
    settings: Settings, fake_telegram: FakeTelegram, nlu_parser: Any, tmp_path: Path
) -> None:
    if settings.database_url.startswith("sqlite"):
        # Two processes leading by turns is a PostgreSQL deployment (SQLite runs one process), and CI runs
        # this test there. On one SQLite file, in the full suite only, the loop's teardown after this test
        # hung on a job's connection close (issue 22 note, 2026-12-06): not yet understood.
        pytest.skip("two runtimes on one SQLite file: runs on PostgreSQL (make test-pg)")
    bot_settings = notify_settings(settings, fake_telegram, tmp_path)
    leader = await build_runtime(bot_settings, parser=nlu_parser)
    standby = await build_runtime(bot_settings, parser=nlu_parser)
    try:
        await start_runtime(leader)
        assert leader.notifications is not None
        await asyncio.wait_for(leader.notifications.leading.wait(), timeout=10)
        await start_runtime(standby)
        assert standby.notifications is not None
        await nothing_arrives(standby.notifications.leading.is_set, within=0.5)
        waited = standby.notifications.leading.is_set()
        leaders_before = [leads(leader), leads(standby)]
        await close_runtime(leader)
        await asyncio.wait_for(standby.notifications.leading.wait(), timeout=10)
        leaders_after = [leads(leader), leads(standby)]
    finally:
        await close_runtime(standby)

    assert waited is False
    assert (leaders_before, leaders_after) == ([1, 0], [0, 1])  # pontibot_scheduler_leader


def leads(rt: Any) -> float | None:
    """The runtime's ``pontibot_scheduler_leader``."""
    return rt.metrics.registry.get_sample_value("pontibot_scheduler_leader")  # type: ignore[no-any-return]


def test_a_scheduler_built_for_postgres_keeps_its_jobs_through_psycopg() -> None:
    loop = asyncio.new_event_loop()
    try:
        scheduler = build_scheduler(
            database_url="postgresql+asyncpg://bot@127.0.0.1:1/pontibot", loop=loop, misfire_grace_seconds=5
        )
        store = scheduler._jobstores["default"]
        url = store.engine.url
        store.engine.dispose()
    finally:
        loop.close()

    assert (url.drivername, url.database, store.jobs_t.name) == (
        "postgresql+psycopg",
        "pontibot",
        "apscheduler_jobs",
    )


async def test_stepping_down_waits_until_cancelled_jobs_have_unwound() -> None:
    """A job cancelled mid-query must finish its clean-up before the database is closed under it."""
    executor = LoopExecutor()
    executor._eventloop = asyncio.get_running_loop()  # what APScheduler's start() sets
    started, unwound = asyncio.Event(), asyncio.Event()

    async def job() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a query that would never return
        finally:
            await asyncio.sleep(0)  # clean-up that needs the loop (a driver closing its connection)
            unwound.set()

    asyncio.run_coroutine_threadsafe(executor._tracked(job()), asyncio.get_running_loop())
    await asyncio.wait_for(started.wait(), timeout=5)

    await executor.drain()

    assert unwound.is_set()
    assert not executor._running


async def test_a_job_store_round_finishing_after_shutdown_submits_nothing() -> None:
    executor = LoopExecutor()
    executor._eventloop, executor._pending_futures = asyncio.get_running_loop(), set()  # as start() sets
    executor.shutdown()

    executor._do_submit_job(object(), [])  # the round was under way when the scheduler stopped

    assert not executor._running
