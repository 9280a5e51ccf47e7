"""The scheduler: one leader per database runs APScheduler's jobs and the outbox dispatcher.

Leadership: on PostgreSQL a session advisory lock (``pg_try_advisory_lock``) held on a connection of
its own for as the process leads — when the process dies, PostgreSQL drops the connection and
the lock, and another worker takes over within ``notifications.leader_retry_seconds``. On SQLite (one
machine) an exclusive ``flock`` on ``<database file>.leader``, which the kernel releases when the
process dies, even by SIGKILL. Every worker tries; exactly one leads; the others keep trying.

APScheduler 3 (``AsyncIOScheduler``) keeps its jobs in our database through its synchronous
``SQLAlchemyJobStore`` (``apscheduler_jobs``, made by our migrations). Its URL is ours with a
synchronous driver (``sqlite:///…``; ``postgresql+psycopg://…`` — psycopg 3, since asyncpg cannot be
used synchronously). A synchronous call on the event loop would stall every coroutine — and on SQLite
it could wait for a write lock held by a coroutine it stalls — so :class:`OffLoopScheduler` talks to the
job store from a worker thread and hands due jobs back to the loop. Jobs are stored by reference
(``run_job`` of this module + the job's name and this scheduler's token), never with live objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.executors.base import run_coroutine_job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.asyncio import AsyncIOScheduler, run_in_event_loop
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url

from bot.channels.base import ChannelSender
from bot.metrics import Metrics
from bot.notifications import jobs
from bot.notifications.changes import ChangeDetector
from bot.notifications.leadership import LEADER_CHECK_SECONDS, Leadership, leadership_for
from bot.notifications.outbox import OutboxDispatcher
from bot.runtime import Backends
from bot.settings import Settings
from bot.tasks import Spawn
from flows.messages import Channel
from flows.texts import Texts
from storage.db import Database
from storage.notify_models import SCHEDULER_JOBS_TABLE

logger = logging.getLogger(__name__)

JOB_FUNC = "bot.notifications.scheduler:run_job"


def sync_url(async_url: str) -> str:
    """The synchronous SQLAlchemy URL of our database (for APScheduler's job store)."""
    url = make_url(async_url)
    if url.drivername.startswith("sqlite"):
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    if url.drivername.startswith("postgresql"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"no synchronous driver known for {url.drivername}")


# ---- APScheduler with its job store off the event loop -------------------------------------------

DRAIN_SECONDS = 10.0  # how long stepping down waits for cancelled jobs to unwind


class LoopExecutor(AsyncIOExecutor):  # type: ignore[misc]
    """Runs coroutine jobs on the scheduler's event loop, submitted from the job-store thread.

    The tasks running jobs are tracked, so stepping down waits for the cancelled ones to unwind
    (:meth:`drain`) before the database they use is closed: a job cancelled mid-query after its engine
    was disposed could otherwise wait forever on the driver's close."""

    def __init__(self) -> None:
        super().__init__()
        self._running: set[asyncio.Task[Any]] = set()
        self._closed = False

    async def _tracked(self, coro: Awaitable[Any]) -> Any:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            return await coro
        finally:
            self._running.discard(task)

    async def drain(self) -> None:
        """Cancel the jobs still running and wait (up to :data:`DRAIN_SECONDS`) until they have unwound."""
        tasks = [task for task in self._running if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=DRAIN_SECONDS)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        if self._closed:  # a job-store round that was under way when the scheduler shut down
            return
        coro = run_coroutine_job(job, job._jobstore_alias, run_times, self._logger.name)
        future = asyncio.run_coroutine_threadsafe(self._tracked(coro), self._eventloop)

        def done(finished: Any) -> None:
            self._pending_futures.discard(finished)
            try:
                events = finished.result()
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        self._pending_futures.add(future)
        future.add_done_callback(done)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel running jobs (a copy of the set: their callbacks remove themselves meanwhile); submit
        no new ones."""
        self._closed = True
        for future in list(self._pending_futures):
            if not future.done():
                future.cancel()
        self._pending_futures.clear()


class OffLoopScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """An AsyncIOScheduler that reads and writes its (synchronous) job store in a worker thread."""

    _processing: asyncio.Task[None] | None = None

    @run_in_event_loop  # type: ignore[misc,untyped-decorator]
    def wakeup(self) -> None:
        if not self.running:  # a wake-up queued before shutdown: no job-store round after it
            return
        self._stop_timer()
        if self._processing is not None and not self._processing.done():
            self._processing.add_done_callback(lambda _: self.wakeup())
            return
        self._processing = self._eventloop.create_task(self._process_off_loop())

    async def _process_off_loop(self) -> None:
        wait_seconds = await asyncio.to_thread(self._process_jobs)
        if self.running:
            self._start_timer(wait_seconds)

    def _create_default_executor(self) -> LoopExecutor:
        return LoopExecutor()

    async def shutdown_off_loop(self) -> None:
        """Stop now: cancel the timer, let a job-store round finish, close the store in a thread."""
        self._stop_timer()
        if self._processing is not None:
            await asyncio.gather(self._processing, return_exceptions=True)
        with contextlib.suppress(SchedulerNotRunningError):
            await asyncio.to_thread(BaseScheduler.shutdown, self, False)
        for executor in self._executors.values():
            if isinstance(executor, LoopExecutor):
                await executor.drain()


def build_scheduler(
    *, database_url: str, loop: asyncio.AbstractEventLoop, misfire_grace_seconds: int
) -> OffLoopScheduler:
    """An APScheduler with the persisted job store in our database; coalescing and misfire grace set."""
    url = sync_url(database_url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        # Used from worker threads; waits for a writer instead of failing at once.
        options["connect_args"] = {"check_same_thread": False, "timeout": 15}
    store = SQLAlchemyJobStore(url=url, tablename=SCHEDULER_JOBS_TABLE, engine_options=options)
    return OffLoopScheduler(
        jobstores={"default": store},
        executors={"default": LoopExecutor()},
        job_defaults={"coalesce": True, "misfire_grace_time": misfire_grace_seconds, "max_instances": 1},
        timezone=UTC,
        event_loop=loop,
    )


# ---- the service the runtime starts ---------------------------------------------------------------

JobRunner = Callable[[str], Awaitable[None]]
# Persisted jobs name a function, not an object: run_job(token, name) finds the running scheduler here.
RUNNERS: dict[str, JobRunner] = {}


async def run_job(token: str, name: str) -> None:
    """Run the job ``name`` of the scheduler ``token`` (what the persisted job store refers to)."""
    runner = RUNNERS.get(token)
    if runner is None:
        logger.warning("job %s belongs to a scheduler that is not running here; skipped", name)
        return
    await runner(name)


class NotificationScheduler:
    """Leads (or waits to lead), and while leading runs the jobs and the outbox dispatcher."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database,
        texts: Texts,
        backends: Backends,
        channels: Mapping[Channel, ChannelSender],
        spawn: Spawn,
        clock: Callable[[], datetime] | None = None,
        leadership: Leadership | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings.notifications
        self.metrics = metrics
        self.timezone = settings.timezone
        self.database_url = settings.database_url
        self.submit_interval = settings.complaints.submit_interval_seconds
        self.db = db
        self.texts = texts
        self.desk = backends.complaints
        self.channels = channels
        self.clock = clock
        self._spawn = spawn
        self.leadership = leadership or leadership_for(db)
        self.token = uuid.uuid4().hex
        self.detector = ChangeDetector(
            db=db,
            texts=texts,
            permits=backends.permits,
            complaints=backends.complaint_backend,
            clock=clock,
        )
        self.dispatcher: OutboxDispatcher | None = None
        self.leading = asyncio.Event()
        self._scheduler: OffLoopScheduler | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def jobs(self) -> dict[str, tuple[float, Callable[[], Awaitable[object]]]]:
        """Every job: name → (interval in seconds, what it runs)."""
        settings, wake = self.settings, self.wake
        return {
            "poll_permits": (settings.poll_interval_seconds, lambda: jobs.poll_permits(self.detector, wake)),
            "poll_complaints": (
                settings.poll_interval_seconds,
                lambda: jobs.poll_complaints(self.detector, wake),
            ),
            "dispatch_outbox": (settings.dispatch_interval_seconds, lambda: jobs.dispatch_outbox(wake)),
            "submit_pending": (
                self.submit_interval,
                lambda: jobs.submit_pending(self.desk, self.texts, wake),
            ),
        }

    def wake(self) -> None:
        """Something was queued: let the dispatcher look now (no-op when this process does not lead)."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def start(self) -> None:
        """Start competing for leadership in the background (nothing when notifications are off)."""
        if not self.settings.enabled:
            logger.info("scheduler: notifications.enabled is false; no jobs in this process")
            return
        self._task = self._spawn(self._lead(), name="scheduler-leader")

    async def _lead(self) -> None:
        while not self._stopping:
            try:
                if await self.leadership.acquire():
                    logger.info("scheduler: this process leads (jobs and outbox dispatch run here)")
                    try:
                        await self._run_as_leader()
                    finally:
                        await self._step_down()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("scheduler: leading failed; trying again")
            if not self._stopping:
                await asyncio.sleep(self.settings.leader_retry_seconds)

    async def _run_as_leader(self) -> None:
        dispatcher = self.dispatcher = OutboxDispatcher(
            db=self.db,
            channels=self.channels,
            settings=self.settings,
            timezone=self.timezone,
            clock=self.clock,
            metrics=self.metrics,
        )
        dispatching = asyncio.create_task(dispatcher.run(), name="outbox-dispatcher")
        try:
            RUNNERS[self.token] = self._run_job
            scheduler = build_scheduler(
                database_url=self.database_url,
                loop=asyncio.get_running_loop(),
                misfire_grace_seconds=self.settings.misfire_grace_seconds,
            )
            now = datetime.now(UTC)
            for name, (interval, _) in self.jobs().items():
                scheduler.add_job(
                    JOB_FUNC,
                    IntervalTrigger(seconds=interval),
                    args=[self.token, name],
                    id=name,
                    name=name,
                    replace_existing=True,
                    next_run_time=now,
                )
            self._scheduler = scheduler
            await asyncio.to_thread(scheduler.start)
            self.leading.set()
            if self.metrics is not None:
                self.metrics.leading(True)
            while not self._stopping and not dispatching.done():
                await asyncio.sleep(LEADER_CHECK_SECONDS)
                if not await self.leadership.holds():
                    logger.warning("scheduler: leadership lost; stopping jobs and dispatch here")
                    return
            if dispatching.done() and not self._stopping:
                dispatching.result()  # the dispatcher loop crashed: _lead logs it and leads again
        finally:
            await dispatcher.stop()
            await asyncio.gather(dispatching, return_exceptions=True)

    async def _run_job(self, name: str) -> None:
        job = self.jobs().get(name)
        if job is None:
            logger.warning("scheduler: no job called %s any more", name)
            return
        try:
            await job[1]()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("job %s failed; it runs again at its next time", name)

    async def _step_down(self) -> None:
        """Stop the jobs and the dispatcher; leadership is released whatever fails on the way."""
        self.leading.clear()
        if self.metrics is not None:
            self.metrics.leading(False)
        RUNNERS.pop(self.token, None)
        scheduler, self._scheduler = self._scheduler, None
        dispatcher, self.dispatcher = self.dispatcher, None
        try:
            if scheduler is not None and scheduler.running:
                await scheduler.shutdown_off_loop()
            if dispatcher is not None:
                await dispatcher.stop()
        finally:
            await self.leadership.release()

    async def stop(self) -> None:
        """Stop the jobs and the dispatcher (sends in flight finish first), then give up leadership."""
        self._stopping = True
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
