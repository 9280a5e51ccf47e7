"""With ``complaints.backend: open311`` the console's complaints page says where complaints are worked
and lists, read-only, what the bot filed there; status changes are refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from storage.backend_models import ComplaintRecord
from storage.staff_models import AuditEntry
from tests.bot.staff.conftest import API_TOKEN, add_staff
from tests.conftest import LiveServer


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Complaints go to an Open311 server (never reached here: the list is what the bot stored)."""
    complaints = {"backend": "open311", "open311": {"base_url": "http://127.0.0.1:9/open311/v2"}}
    return {"environ": {"PONTIBOT_STAFF__API_TOKEN": API_TOKEN}, "complaints": complaints}


async def test_with_open311_the_page_points_there_and_lists_what_the_bot_filed(
    live_server: LiveServer, api: httpx.AsyncClient, console: Any
) -> None:
    async with live_server.runtime.db.session() as session:
        session.add(
            ComplaintRecord(
                local_ref="LR-AB12CD",
                ticket="OS-5521",
                backend="open311",
                category="garbage",
                description="Sampah di parit Jl. Gajahmada",
                status="open",
            )
        )
    await add_staff(live_server.runtime, "budi")
    staff = await console()
    await staff.login("budi")

    page = await staff.client.get("/staff/complaints")
    listed = (await api.get("/api/staff/complaints")).json()
    change = await api.post("/api/staff/complaints/OS-5521/status", json={"status": "verified", "note": "x"})
    demo = await staff.client.get("/staff/demo")

    assert "sistem Open311" in page.text and "OS-5521" in page.text
    assert listed["backend"] == "open311" and [c["ticket"] for c in listed["complaints"]] == ["OS-5521"]
    assert change.status_code == 409
    async with live_server.runtime.db.session() as session:
        actions = (await session.execute(select(AuditEntry.what))).scalars().all()
    assert "complaint.status" not in actions
    assert demo.status_code == 200
