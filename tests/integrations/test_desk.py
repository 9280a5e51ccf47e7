"""The desk inside a turn: it joins the turn's transaction (no second writer on SQLite, one commit)."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from sqlalchemy import func, select

from bot.settings import Settings
from bot.tasks import run_every
from bot.wiring.backends import BackendConfigError, build_backends
from integrations.base import reporter_ref, resident_id_of
from integrations.demo_permits import DemoPermitBackend
from integrations.desk import StoringComplaintDesk
from integrations.local_complaints import LocalComplaintBackend
from integrations.units import joined
from storage.backend_models import ComplaintRecord
from storage.db import Database
from tests import factories

report = partial(
    factories.report, "garbage", "Sampah menumpuk di Jl. Merdeka", resident_id=3, lat=-0.03, lon=109.33
)


async def count(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(ComplaintRecord))).scalar_one())


async def test_filing_inside_a_turn_uses_the_turns_transaction(db: Database) -> None:
    desk = StoringComplaintDesk(db, LocalComplaintBackend(db), kind="local")
    demo = DemoPermitBackend(db)

    async with db.session() as session, asyncio.timeout(5):
        await session.execute(select(1))  # the turn holds its transaction (SQLite: the write lock)
        with joined(session):
            filing = await desk.file(report())
            await demo.seed()
            permit = await demo.get("PBG-2026-00123")

    assert (filing.pending, filing.ticket is not None, permit is not None) == (False, True, True)
    assert await count(db) == 1


async def test_a_turn_that_fails_takes_its_complaint_with_it(db: Database) -> None:
    desk = StoringComplaintDesk(db, LocalComplaintBackend(db), kind="local")

    with pytest.raises(RuntimeError):
        async with db.session() as session:
            with joined(session):
                await desk.file(report())
            raise RuntimeError("the flow crashed after filing")

    assert await count(db) == 0


def test_reporter_refs_name_our_residents_only() -> None:
    assert (
        reporter_ref(42),
        resident_id_of("resident:42"),
        resident_id_of("open311:x"),
        resident_id_of(None),
    ) == (
        "resident:42",
        42,
        None,
        None,
    )


def test_a_chosen_back_end_without_its_url_says_which_key_to_set(settings: Settings, db: Database) -> None:
    http = settings.model_copy(update={"permits": settings.permits.model_copy(update={"backend": "http"})})
    open311 = settings.model_copy(
        update={"complaints": settings.complaints.model_copy(update={"backend": "open311"})}
    )

    with pytest.raises(BackendConfigError, match=r"permits\.http\.base_url"):
        build_backends(http, db)
    with pytest.raises(BackendConfigError, match=r"complaints\.open311\.base_url"):
        build_backends(open311, db)


async def test_the_default_runtime_serves_demo_permits_and_local_complaints(runtime) -> None:  # type: ignore[no-untyped-def]
    backends = runtime.backends

    assert (backends.permits.name, backends.complaint_backend.name) == ("demo-permits", "local-complaints")
    assert await backends.permits.get("SLF-2026-00045") is not None  # seeded when the runtime opened
    assert backends.local_complaints is backends.complaint_backend


async def test_a_job_loop_survives_a_failing_run() -> None:
    runs: list[int] = []

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("back end exploded")
        if len(runs) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_every(0.001, job, name="test")

    assert runs == [0, 1, 2]
