"""Dead letters with requeue, demo permit advance, and announcements, in the console and its API; every
action audit-logged; every new route refuses callers without a session or token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from bot.notifications.changes import permit_notice
from bot.privacy import mask_id
from storage import repositories as repo
from storage.models import OutboxMessage, Resident
from storage.staff_models import AuditEntry
from tests.bot.staff.conftest import TEXTS, add_staff, hidden, resident_id_of_session
from tests.bot.staff.conftest import Resident as WebResident
from tests.conftest import LiveServer


async def audit_of(server: LiveServer, what: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    async with server.runtime.db.session() as session:
        rows = (await session.execute(select(AuditEntry).where(AuditEntry.what == what))).scalars().all()
        return [(r.who, r.target, r.details) for r in rows]


async def dead_letter(server: LiveServer, session_id: str, text: str) -> int:
    """A notification to a web chat resident that gave up after eight attempts."""
    async with server.runtime.db.session() as session:
        resident = (
            await session.execute(select(Resident).where(Resident.external_id == session_id))
        ).scalar_one()
        await repo.enqueue_outbox(
            session,
            resident=resident,
            kind="notification",
            body={"text": text, "buttons": []},
            idempotency_key=text,
        )
        row = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == text))
        ).scalar_one()
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(status="dead", attempts=8, last_error="503 Service Unavailable")
        )
        return row.id


async def test_a_dead_letter_is_listed_masked_requeued_once_and_then_delivered(
    live_server: LiveServer,
    console: Any,
    api: httpx.AsyncClient,
    resident: Callable[[str], WebResident],
    outbox: Any,
) -> None:
    warga = resident("warga-gagal")
    await warga.say("halo")
    await warga.new_events()
    letter = await dead_letter(live_server, "warga-gagal", "Kantor Disdukcapil buka lagi Senin.")
    await add_staff(live_server.runtime, "budi", "agent", "Budi")
    staff = await console()
    await staff.login("budi")

    page = await staff.client.get("/staff/outbox")
    listed = (await api.get("/api/staff/outbox/dead")).json()
    requeued = await staff.client.post(
        f"/staff/outbox/{letter}/requeue", data={"csrf_token": hidden(page.text, "csrf_token")}
    )
    again = await api.post(f"/api/staff/outbox/{letter}/requeue")
    await outbox.deliver_due()
    events = await warga.new_events()

    assert "Kantor Disdukcapil buka lagi Senin." in page.text and "503 Service Unavailable" in page.text
    assert mask_id("warga-gagal") in page.text and "warga-gagal" not in page.text
    assert listed["total"] == 1 and listed["dead_letters"][0]["chat"] == mask_id("warga-gagal")
    assert requeued.status_code == 303
    assert again.status_code == 404  # not a dead letter any more
    assert [e["text"] for e in events] == ["Kantor Disdukcapil buka lagi Senin."]
    assert (await api.get("/api/staff/outbox/dead")).json()["total"] == 0
    assert await audit_of(live_server, "outbox.requeue") == [("budi", f"outbox:{letter}", {})]


async def test_advancing_a_demo_permit_pushes_to_its_subscriber_at_once(
    live_server: LiveServer,
    console: Any,
    api: httpx.AsyncClient,
    resident: Callable[[str], WebResident],
    outbox: Any,
) -> None:
    warga = resident("warga-izin")
    await warga.say("halo")
    await warga.new_events()
    rid = await resident_id_of_session(live_server.runtime, "warga-izin")
    async with live_server.runtime.db.session() as session:
        await repo.subscribe(
            session, resident_id=rid, topic="permit", ref="PBG-2026-00124", last_status="diterima"
        )
    await add_staff(live_server.runtime, "sari", "admin", "Sari")
    staff = await console()
    await staff.login("sari")

    page = await staff.client.get("/staff/demo")
    listed = (await api.get("/api/staff/demo/permits")).json()["permits"]
    moved = await staff.client.post(
        "/staff/demo/PBG-2026-00124/advance", data={"csrf_token": hidden(page.text, "csrf_token")}
    )
    final = await api.post("/api/staff/demo/permits/PBG-2026-00126/advance")
    after = await staff.client.get(moved.headers["location"])
    await outbox.deliver_due()
    events = await warga.new_events()

    assert "PBG-2026-00124" in page.text and "Majukan ke Verifikasi berkas" in page.text
    assert {p["number"]: (p["stage"], p["next_stage"]) for p in listed}["PBG-2026-00124"] == (
        "diterima",
        "verifikasi_berkas",
    )
    assert "PBG-2026-00124 kini Verifikasi berkas; 1 warga diberi tahu." in after.text
    assert final.status_code == 409  # already at its last stage
    permit = await live_server.runtime.backends.permits.get("PBG-2026-00124")
    assert permit is not None
    expected = permit_notice(TEXTS, "id", permit)
    assert expected is not None
    assert [e["text"] for e in events] == [expected.reply.text]
    assert await audit_of(live_server, "demo.advance") == [
        ("sari", "permit:PBG-2026-00124", {"to": "verifikasi_berkas", "notified": 1})
    ]


async def test_announcements_are_for_admins_and_show_their_progress(
    live_server: LiveServer,
    console: Any,
    api: httpx.AsyncClient,
    resident: Callable[[str], WebResident],
    outbox: Any,
) -> None:
    for name in ("warga-a", "warga-b"):
        await resident(name).say("halo")
        rid = await resident_id_of_session(live_server.runtime, name)
        async with live_server.runtime.db.session() as session:
            await repo.subscribe(session, resident_id=rid, topic="announcements", ref="*")
    await add_staff(live_server.runtime, "sari", "admin", "Sari")
    await add_staff(live_server.runtime, "budi", "agent", "Budi")
    admin, agent = await console(), await console()
    await admin.login("sari")
    await agent.login("budi")
    text = "Layanan MPP tutup Jumat karena pemeliharaan sistem."

    agent_page = await agent.client.get("/staff/broadcast")
    agent_api = await agent.client.post(
        "/api/staff/broadcasts",
        json={"text": text},
        headers={"X-CSRF-Token": await agent.csrf()},
    )
    form = await admin.client.get("/staff/broadcast")
    empty = await admin.client.post(
        "/staff/broadcast", data={"text": " ", "csrf_token": hidden(form.text, "csrf_token")}
    )
    empty_page = await admin.client.get("/staff/broadcast")
    sent = await admin.client.post(
        "/staff/broadcast",
        data={"text": text, "segment": "subscribers", "csrf_token": hidden(form.text, "csrf_token")},
    )
    queued_page = await admin.client.get(sent.headers["location"])
    broadcast_id = int(sent.headers["location"].split("=")[1])
    await outbox.deliver_due()
    progress = (await api.get(f"/api/staff/broadcasts/{broadcast_id}")).json()

    assert agent_page.status_code == 403 and agent_api.status_code == 403
    assert empty.status_code == 303 and "Tulis isi pengumuman." in empty_page.text
    assert f"Pengumuman #{broadcast_id} diantrekan untuk 2 warga." in queued_page.text
    assert (progress["total"], progress["sent"], progress["finished"]) == (2, 2, True)
    assert await audit_of(live_server, "broadcast.send") == [
        (
            "sari",
            f"broadcast:{broadcast_id}",
            {"segment": "subscribers", "language": "*", "recipients": 2, "urgent": False},
        )
    ]


NEW_PAGES = (
    "/staff/complaints",
    "/staff/complaints/ADU-2026-000001",
    "/staff/outbox",
    "/staff/demo",
    "/staff/broadcast",
)
NEW_API = (
    ("GET", "/api/staff/complaints"),
    ("GET", "/api/staff/complaints/ADU-2026-000001"),
    ("POST", "/api/staff/complaints/ADU-2026-000001/status"),
    ("GET", "/api/staff/complaints/ADU-2026-000001/photos/0"),
    ("GET", "/api/staff/outbox/dead"),
    ("POST", "/api/staff/outbox/1/requeue"),
    ("GET", "/api/staff/demo/permits"),
    ("POST", "/api/staff/demo/permits/PBG-2026-00124/advance"),
    ("GET", "/api/staff/broadcasts"),
    ("POST", "/api/staff/broadcasts"),
    ("GET", "/api/staff/broadcasts/1"),
)


async def test_without_a_session_or_token_new_pages_redirect_and_the_api_answers_401(
    live_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as stranger:
        pages = [(await stranger.get(path)).status_code for path in NEW_PAGES]
        posts = [
            (await stranger.post(path, data={"csrf_token": "x", "to": "verified", "note": "x"})).status_code
            for path in ("/staff/outbox/1/requeue", "/staff/demo/PBG-2026-00124/advance", "/staff/broadcast")
        ]
        api = [(await stranger.request(method, path, json={})).status_code for method, path in NEW_API]
        wrong_token = await stranger.get("/api/staff/complaints", headers={"Authorization": "Bearer nope"})

    assert pages == [303] * len(NEW_PAGES)
    assert posts == [303] * 3
    assert api == [401] * len(NEW_API)
    assert wrong_token.status_code == 401


@pytest.mark.parametrize("method, path", NEW_API)
async def test_the_new_api_routes_are_in_the_openapi_document(
    live_server: LiveServer, method: str, path: str
) -> None:
    schema = (await live_server.client.get("/openapi.json")).json()
    templated = {
        "/api/staff/complaints/ADU-2026-000001": "/api/staff/complaints/{ticket}",
        "/api/staff/complaints/ADU-2026-000001/status": "/api/staff/complaints/{ticket}/status",
        "/api/staff/complaints/ADU-2026-000001/photos/0": "/api/staff/complaints/{ticket}/photos/{index}",
        "/api/staff/outbox/1/requeue": "/api/staff/outbox/{outbox_id}/requeue",
        "/api/staff/demo/permits/PBG-2026-00124/advance": "/api/staff/demo/permits/{number}/advance",
        "/api/staff/broadcasts/1": "/api/staff/broadcasts/{broadcast_id}",
    }.get(path, path)
    operation = schema["paths"][templated][method.lower()]
    assert operation["tags"] == ["staff"]
    assert {"StaffApiToken": []} in operation["security"]
