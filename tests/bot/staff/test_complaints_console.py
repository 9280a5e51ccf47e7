"""Complaints in the console and its API: filters and paging, detail with history, photos for staff only,
status changes with a note that reach the resident exactly once (the page queues; the poller then finds
nothing new), the SLA tile, and the Open311 read-only list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.notifications.changes import ChangeDetector, complaint_notice
from bot.privacy import mask_id
from integrations.base import ComplaintStatus
from storage.models import OutboxMessage
from storage.staff_models import AuditEntry
from tests.bot.staff.conftest import (
    TEXTS,
    Clock,
    Resident,
    add_staff,
    file_complaint,
    hidden,
    resident_id_of_session,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.usefixtures("complaint_clock")

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b1f1e90000000049454e44ae426082"
)


async def audit_of(server: LiveServer, what: str) -> list[AuditEntry]:
    async with server.runtime.db.session() as session:
        rows = (await session.execute(select(AuditEntry).where(AuditEntry.what == what))).scalars().all()
        return list(rows)


async def notifications_for(server: LiveServer, resident_id: int) -> list[OutboxMessage]:
    async with server.runtime.db.session() as session:
        stmt = select(OutboxMessage).where(
            OutboxMessage.resident_id == resident_id, OutboxMessage.kind == "notification"
        )
        return list((await session.execute(stmt.order_by(OutboxMessage.id))).scalars().all())


def detector(server: LiveServer, clock: Clock) -> ChangeDetector:
    rt = server.runtime
    return ChangeDetector(
        db=rt.db,
        texts=rt.texts,
        permits=rt.backends.permits,
        complaints=rt.backends.complaint_backend,
        clock=clock,
    )


async def test_a_status_change_reaches_the_resident_once_with_its_note_and_the_poller_adds_nothing(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    resident: Callable[[str], Resident],
    outbox: Any,
    clock: Clock,
) -> None:
    warga = resident("warga-jalan")
    await warga.say("halo")
    rid = await resident_id_of_session(live_server.runtime, "warga-jalan")
    complaint = await file_complaint(live_server.runtime, resident_id=rid)
    poller = detector(live_server, clock)
    first = await poller.poll_complaints()  # the poller's cursor exists before staff act
    await warga.new_events()

    note = "Laporan sudah dicek petugas; lubang memang membahayakan."
    changed = await api.post(
        f"/api/staff/complaints/{complaint.ticket}/status", json={"status": "verified", "note": note}
    )
    again = await poller.poll_complaints()
    await outbox.deliver_due()
    events = await warga.new_events()

    assert first.queued == 0
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "ok": True,
        "ticket": complaint.ticket,
        "status": "verified",
        "agency": None,
        "notified": 1,
    }
    assert (again.changes, again.queued) == (1, 0)
    rows = await notifications_for(live_server, rid)
    assert [r.idempotency_key for r in rows] == [f"complaint:{complaint.ticket}:verified:{rid}"]
    verified = await live_server.runtime.backends.local_complaints.get(complaint.ticket)  # type: ignore[union-attr]
    expected = complaint_notice(TEXTS, "id", verified)
    assert expected is not None and note in expected.reply.text
    assert [e["text"] for e in events] == [expected.reply.text]
    [line] = await audit_of(live_server, "complaint.status")
    assert (line.who, line.target, line.details["to"], line.details["notified"]) == (
        "api-token",
        f"complaint:{complaint.ticket}",
        "verified",
        1,
    )


async def test_the_poller_first_then_the_page_still_notifies_once(
    live_server: LiveServer, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    """Both paths run for the same change in either order: one row (the idempotency key holds)."""
    warga = resident("warga-dua")
    await warga.say("halo")
    rid = await resident_id_of_session(live_server.runtime, "warga-dua")
    complaint = await file_complaint(live_server.runtime, resident_id=rid)
    poller = detector(live_server, clock)
    await poller.poll_complaints()

    await api.post(
        f"/api/staff/complaints/{complaint.ticket}/status", json={"status": "verified", "note": "Dicek."}
    )
    await api.post(
        f"/api/staff/complaints/{complaint.ticket}/status",
        json={"status": "forwarded", "note": "Diteruskan.", "agency": "Dinas PUPR"},
    )
    await poller.poll_complaints()
    await poller.poll_complaints()

    keys = [r.idempotency_key for r in await notifications_for(live_server, rid)]
    assert keys == [
        f"complaint:{complaint.ticket}:verified:{rid}",
        f"complaint:{complaint.ticket}:forwarded:{rid}",
    ]


async def test_forwarding_sets_the_opd_and_invalid_steps_and_empty_notes_are_refused(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    complaint = await file_complaint(live_server.runtime, resident_id=None)
    url = f"/api/staff/complaints/{complaint.ticket}/status"

    skipped = await api.post(url, json={"status": "resolved", "note": "Sudah beres."})
    no_note = await api.post(url, json={"status": "verified", "note": "   "})
    await api.post(url, json={"status": "verified", "note": "Valid."})
    forwarded = await api.post(url, json={"status": "forwarded", "note": "Ke PUPR.", "agency": "Dinas PUPR"})
    unknown = await api.post(
        "/api/staff/complaints/ADU-2026-999999/status", json={"status": "verified", "note": "x"}
    )

    assert skipped.status_code == 409 and "open" in skipped.json()["error"]["message"]
    assert no_note.status_code == 422
    assert forwarded.json()["agency"] == "Dinas PUPR"
    assert unknown.status_code == 404
    detail = (await api.get(f"/api/staff/complaints/{complaint.ticket}")).json()
    assert [(h["from"], h["to"], h["actor"]) for h in detail["history"]] == [
        ("pending", "open", "bot"),
        ("open", "verified", "api-token"),
        ("verified", "forwarded", "api-token"),
    ]
    assert detail["next_statuses"] == ["in_progress", "rejected"]


async def test_filters_paging_and_masked_reporters(
    live_server: LiveServer, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    await resident("warga-lampu").say("halo")
    rid = await resident_id_of_session(live_server.runtime, "warga-lampu")
    rt = live_server.runtime
    old = await file_complaint(rt, resident_id=rid, category="street_light", description="Lampu jalan mati")
    clock.advance(days=20)  # the first one is now past its due date
    for i in range(27):
        await file_complaint(
            rt, resident_id=None, category="garbage", description=f"Sampah menumpuk {i}", kelurahan_code=None
        )
    await api.post(f"/api/staff/complaints/{old.ticket}/status", json={"status": "verified", "note": "Dicek"})

    page1 = (await api.get("/api/staff/complaints")).json()
    page2 = (await api.get("/api/staff/complaints", params={"page": 2})).json()
    lights = (await api.get("/api/staff/complaints", params={"category": "street_light"})).json()
    verified = (await api.get("/api/staff/complaints", params={"status": "verified"})).json()
    overdue = (await api.get("/api/staff/complaints", params={"overdue": "1"})).json()
    by_text = (await api.get("/api/staff/complaints", params={"q": "menumpuk 26"})).json()
    by_place = (await api.get("/api/staff/complaints", params={"kelurahan": "61.71.01.1002"})).json()
    today = clock().astimezone(live_server.runtime.dispatcher.timezone).date()
    dated = (
        await api.get("/api/staff/complaints", params={"date_from": (today - timedelta(days=1)).isoformat()})
    ).json()
    bad_date = await api.get("/api/staff/complaints", params={"date_from": "kemarin"})

    assert (page1["total"], page1["pages"], len(page1["complaints"]), len(page2["complaints"])) == (
        28,
        2,
        25,
        3,
    )
    assert [c["ticket"] for c in lights["complaints"]] == [old.ticket]
    assert [c["ticket"] for c in verified["complaints"]] == [old.ticket]
    assert [c["ticket"] for c in overdue["complaints"]] == [old.ticket] and overdue["complaints"][0][
        "overdue"
    ]
    assert [c["summary"] for c in by_text["complaints"]] == ["Sampah menumpuk 26"]
    assert [c["ticket"] for c in by_place["complaints"]] == [old.ticket]
    assert by_place["complaints"][0]["kelurahan"] == "Benuamelayu Laut (Pontianak Selatan)"
    assert dated["total"] == 27
    assert bad_date.status_code == 422
    assert lights["complaints"][0]["reporter"] == f"Warga Web chat {mask_id('warga-lampu')}"
    assert "warga-lampu" not in str(page1) + str(page2)


async def test_photos_are_served_to_signed_in_staff_only_and_each_view_is_audited(
    live_server: LiveServer, console: Any, api: httpx.AsyncClient
) -> None:
    complaint = await file_complaint(live_server.runtime, resident_id=None, media=(PNG,))
    await add_staff(live_server.runtime, "budi", "agent", "Budi")
    staff = await console()
    await staff.login("budi")
    stranger = httpx.AsyncClient(base_url=live_server.url)

    page = await staff.client.get(f"/staff/complaints/{complaint.ticket}")
    photo = await staff.client.get(f"/staff/complaints/{complaint.ticket}/photos/0")
    by_api = await api.get(f"/api/staff/complaints/{complaint.ticket}/photos/0")
    missing = await api.get(f"/api/staff/complaints/{complaint.ticket}/photos/1")
    anonymous_page = await stranger.get(f"/staff/complaints/{complaint.ticket}/photos/0")
    anonymous_api = await stranger.get(f"/api/staff/complaints/{complaint.ticket}/photos/0")
    await stranger.aclose()

    assert page.status_code == 200 and f"/staff/complaints/{complaint.ticket}/photos/0" in page.text
    assert "openstreetmap.org/?mlat=-0.030500&amp;mlon=109.342500" in page.text
    assert (photo.status_code, photo.content, photo.headers["cache-control"]) == (
        200,
        PNG,
        "private, no-store",
    )
    assert by_api.content == PNG and missing.status_code == 404
    assert anonymous_page.status_code == 303 and anonymous_page.headers["location"].startswith("/staff/login")
    assert anonymous_api.status_code == 401
    assert [(a.who, a.target) for a in await audit_of(live_server, "complaint.photo")] == [
        ("budi", f"complaint:{complaint.ticket}"),
        ("api-token", f"complaint:{complaint.ticket}"),
    ]


async def test_the_console_form_changes_the_status_and_says_who_was_told(
    live_server: LiveServer, console: Any, resident: Callable[[str], Resident]
) -> None:
    await resident("warga-form").say("halo")
    rid = await resident_id_of_session(live_server.runtime, "warga-form")
    complaint = await file_complaint(live_server.runtime, resident_id=rid, media=(PNG,))
    await add_staff(live_server.runtime, "sari", "admin", "Sari")
    staff = await console()
    await staff.login("sari")

    listing = await staff.client.get("/staff/complaints", params={"status": "open"})
    page = await staff.client.get(f"/staff/complaints/{complaint.ticket}")
    no_csrf = await staff.client.post(
        f"/staff/complaints/{complaint.ticket}/status", data={"to": "verified", "note": "x"}
    )
    done = await staff.client.post(
        f"/staff/complaints/{complaint.ticket}/status",
        data={"to": "verified", "note": "Sudah dicek.", "csrf_token": hidden(page.text, "csrf_token")},
    )
    after = await staff.client.get(done.headers["location"])

    assert listing.status_code == 200 and complaint.ticket in listing.text
    assert mask_id("warga-form") in listing.text and "warga-form" not in listing.text
    assert no_csrf.status_code == 403
    assert done.status_code == 303 and done.headers["location"] == f"/staff/complaints/{complaint.ticket}"
    assert f"{complaint.ticket} kini Diverifikasi; 1 warga diberi tahu." in after.text
    assert "Sudah dicek." in after.text  # the history
    assert 'value="forwarded"' in after.text  # the next step offered


async def test_dashboard_counts_overdue_open_complaints(
    live_server: LiveServer, api: httpx.AsyncClient, console: Any, clock: Clock
) -> None:
    rt = live_server.runtime
    await file_complaint(rt, resident_id=None, category="road_damage")
    await file_complaint(rt, resident_id=None, category="road_damage")
    done = await file_complaint(rt, resident_id=None, category="garbage")
    clock.advance(days=30)
    await file_complaint(rt, resident_id=None, category="garbage")  # new: within its SLA
    for to in ("verified", "rejected"):
        await api.post(f"/api/staff/complaints/{done.ticket}/status", json={"status": to, "note": "x"})
    await add_staff(rt, "sari", "admin")
    staff = await console()
    await staff.login("sari")

    board = (await api.get("/api/staff/dashboard")).json()
    page = await staff.client.get("/staff/dashboard")

    assert (board["overdue_complaints"], board["sla_breaches"]) == (
        2,
        [{"category": "road_damage", "count": 2}],
    )
    assert "Pengaduan lewat tenggat" in page.text and "Jalan rusak: 2" in page.text


def test_every_complaint_status_has_a_console_label() -> None:
    from bot.staff.complaint_views import STATUS_LABELS

    assert set(STATUS_LABELS) == {s.value for s in ComplaintStatus}


@pytest.mark.parametrize(
    "params",
    [
        {"date_from": "0001-01-01"},
        {"date_to": "0001-01-01"},
        {"date_to": "9999-12-31"},
        {"date_from": "9999-12-31"},
    ],
)
async def test_dates_at_the_ends_of_the_calendar_are_a_validation_error_not_a_crash(
    live_server: LiveServer, console: Any, api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    await add_staff(live_server.runtime, "sari")
    browser = await console()
    await browser.login("sari")

    from_api = await api.get("/api/staff/complaints", params=params)
    page = await browser.client.get("/staff/complaints", params=params)
    shown = await browser.client.get(page.headers.get("location", "/staff"))

    assert from_api.status_code == 422
    assert from_api.json()["error"]["message"].startswith("Tanggal tidak valid")
    assert page.status_code == 303
    assert "Tanggal tidak valid" in shown.text
