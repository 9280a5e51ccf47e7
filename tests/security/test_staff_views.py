"""Staff list views show no NIK, phone number or e-mail in clear — not even in a resident's profile name.

(Masked detail views, the audit-logged reveal for the assigned agent or an admin, CSRF and login
throttling are proven in tests/staff/test_console_auth.py.)
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import update

from bot.runtime import Runtime
from storage.models import Resident as ResidentRow
from tests.staff.conftest import Clock, Resident

NIK = "6171015508900003"
PHONE = "081234567890"
EMAIL = "budi.santoso@gmail.com"


async def test_queue_and_list_mask_personal_data_in_names_and_messages(
    runtime: Runtime, api: httpx.AsyncClient, resident: Callable[[str], Resident], clock: Clock
) -> None:
    warga = resident("warga-views")
    await warga.say("mau bicara dengan petugas")
    await warga.say(f"NIK {NIK}, hp {PHONE}, email {EMAIL}")
    async with runtime.db.session() as session:
        await session.execute(
            update(ResidentRow)
            .where(ResidentRow.external_id == "warga-views")
            .values(display_name=f"Budi {PHONE}")
        )

    listed = await api.get("/api/staff/handoffs")
    page = await api.get("/staff")
    detail = await api.get("/api/staff/handoffs/1")

    assert listed.status_code == 200, listed.text
    for body in (listed.text, page.text, detail.text):
        assert NIK not in body and PHONE not in body and EMAIL not in body
    assert "0812****7890" in listed.json()["handoffs"][0]["resident"]
