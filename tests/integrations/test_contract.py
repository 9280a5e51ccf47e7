"""One contract for every back end: demo and HTTP permits, local and Open311 complaints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from functools import partial

import pytest

from integrations.base import (
    Complaint,
    ComplaintStatus,
    NearbySearching,
    Permit,
    PermitStage,
    reporter_ref,
)
from integrations.desk import StoringComplaintDesk
from storage.db import Database
from tests import factories
from tests.integrations.harness import ComplaintHarness, PermitHarness, complaint_harness, permit_harness

# Jl. Gajah Mada, Pontianak, and a point about 80 m further along.
HERE = (-0.0335, 109.3356)
NEAR = (-0.0342, 109.3356)
FAR = (-0.0600, 109.3600)


@pytest.fixture
async def permits(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[PermitHarness]:
    async for harness in permit_harness(request.param, db):
        yield harness


@pytest.fixture
async def complaints(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[ComplaintHarness]:
    async for harness in complaint_harness(request.param, db):
        yield harness


report = partial(factories.report, resident_id=7, lat=HERE[0], lon=HERE[1])


PERMITS = pytest.mark.parametrize("permits", ["demo", "http"], indirect=True)
COMPLAINTS = pytest.mark.parametrize("complaints", ["local", "open311"], indirect=True)


@PERMITS
async def test_a_known_permit_is_found_with_its_stage(permits: PermitHarness) -> None:
    permit = await permits.backend.get(permits.known)

    assert isinstance(permit, Permit)
    assert (permit.number, permit.permit_type, permit.stage) == (
        permits.known,
        "pbg",
        PermitStage.FIELD_SURVEY,
    )
    assert permit.updated_at.tzinfo is not None


@PERMITS
async def test_an_unknown_permit_is_none(permits: PermitHarness) -> None:
    assert await permits.backend.get("PBG-2026-99999") is None


@PERMITS
async def test_changes_since_reports_a_moved_permit_once(permits: PermitHarness) -> None:
    start = await permits.backend.changes_since(None)
    assert (list(start.items), start.cursor is not None) == ([], True)

    await permits.advance(permits.known)
    changed = await permits.backend.changes_since(start.cursor)
    again = await permits.backend.changes_since(changed.cursor)

    assert [(p.number, p.stage) for p in changed.items] == [(permits.known, PermitStage.AWAITING_PAYMENT)]
    assert list(again.items) == []


@COMPLAINTS
async def test_create_files_a_complaint_with_a_ticket(complaints: ComplaintHarness) -> None:
    filed = await complaints.backend.create(report())

    assert isinstance(filed, Complaint)
    assert (filed.category, filed.status, filed.description) == (
        "road_damage",
        ComplaintStatus.OPEN,
        "Jalan berlubang besar di depan sekolah",
    )
    assert filed.ticket and filed.created_at.tzinfo is not None


@COMPLAINTS
async def test_get_returns_the_filed_complaint(complaints: ComplaintHarness) -> None:
    filed = await complaints.backend.create(report())

    found = await complaints.backend.get(filed.ticket)

    assert found is not None
    assert (found.ticket, found.category, found.status, found.description) == (
        filed.ticket,
        "road_damage",
        ComplaintStatus.OPEN,
        filed.description,
    )
    assert (round(found.lat or 0, 4), round(found.lon or 0, 4)) == HERE


@COMPLAINTS
async def test_an_unknown_ticket_is_none(complaints: ComplaintHarness) -> None:
    assert await complaints.backend.get("999999") is None
    assert await complaints.backend.get("ADU-2026-999999") is None


@COMPLAINTS
async def test_changes_since_reports_a_status_change(complaints: ComplaintHarness) -> None:
    filed = await complaints.backend.create(report())
    start = await complaints.backend.changes_since(None)
    assert list(start.items) == []

    await complaints.change(filed.ticket)
    changed = await complaints.backend.changes_since(start.cursor)
    again = await complaints.backend.changes_since(changed.cursor)

    assert [(c.ticket, c.status is not ComplaintStatus.OPEN) for c in changed.items] == [(filed.ticket, True)]
    assert list(again.items) == []


@COMPLAINTS
async def test_nearby_finds_open_complaints_of_the_category_within_the_radius(
    complaints: ComplaintHarness,
) -> None:
    filed = await complaints.backend.create(report())
    await complaints.backend.create(report(category="garbage", description="Sampah menumpuk"))
    assert isinstance(complaints.backend, NearbySearching)

    near = await complaints.backend.nearby(category="road_damage", lat=NEAR[0], lon=NEAR[1], radius_m=200)
    far = await complaints.backend.nearby(category="road_damage", lat=FAR[0], lon=FAR[1], radius_m=200)

    assert [c.ticket for c in near] == [filed.ticket]
    assert list(far) == []


@COMPLAINTS
async def test_the_desk_files_the_same_report_once(complaints: ComplaintHarness, db: Database) -> None:
    desk = StoringComplaintDesk(db, complaints.backend, kind=complaints.kind)
    same = report()

    first = await desk.file(same)
    second = await desk.file(same)

    assert (first.pending, second.pending, second.ticket) == (False, False, first.ticket)
    assert first.complaint is not None and first.complaint.created_at.tzinfo == UTC
    if complaints.fake is not None:
        assert len(complaints.fake.requests_to("POST", "requests.json")) == 1
    mine = await desk.for_reporter(reporter_ref(7))
    assert [c.ticket for c in mine] == [first.ticket]
    assert (await desk.get(first.local_ref)) is not None


@COMPLAINTS
async def test_the_desk_counts_a_supporter_once(complaints: ComplaintHarness, db: Database) -> None:
    desk = StoringComplaintDesk(db, complaints.backend, kind=complaints.kind)
    filing = await desk.file(report())
    assert filing.ticket is not None

    await desk.add_supporter(filing.ticket, reporter_ref(8))
    supported = await desk.add_supporter(filing.ticket, reporter_ref(8))
    own = await desk.add_supporter(filing.ticket, reporter_ref(7))

    assert supported is not None and own is not None
    assert (supported.supporters, own.supporters) == (1, 1)
    assert await desk.add_supporter("ADU-2026-999999", reporter_ref(8)) is None
    nearby = await desk.nearby(category="road_damage", lat=NEAR[0], lon=NEAR[1], radius_m=200)
    assert [c.ticket for c in nearby] == [filing.ticket]
