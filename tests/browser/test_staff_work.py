"""Complaints, dead letters, demo permits and announcements in a real browser: staff change a complaint's
status and the resident's web chat page shows the notice; staff requeue a dead letter and the resident
receives it; screenshots of each page at desktop and phone widths (test-artifacts/screenshots)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select, update

from bot.notifications.outbox import OutboxDispatcher
from storage import repositories as repo
from storage.models import OutboxMessage, Resident
from tests.bot.staff.conftest import PASSWORD, Clock, add_staff, complaint_clock, file_complaint  # noqa: F401
from tests.browser.conftest import VIEWPORTS
from tests.conftest import LiveServer

pytestmark = pytest.mark.usefixtures("complaint_clock")
NOTE = "Tim Dinas PUPR sudah mengecek lokasi; penambalan dijadwalkan Kamis pagi."


@pytest.fixture
async def dispatching(live_server: LiveServer, clock: Clock) -> AsyncIterator[OutboxDispatcher]:
    """The outbox dispatcher running in the background, as in a started server."""
    rt = live_server.runtime
    settings = rt.settings.notifications.model_copy(update={"dispatch_interval_seconds": 0.5})
    dispatcher = OutboxDispatcher(db=rt.db, channels=rt.channels, settings=settings, clock=clock)
    task = asyncio.create_task(dispatcher.run())
    yield dispatcher
    await dispatcher.stop(grace=1)
    await asyncio.gather(task, return_exceptions=True)


async def open_web_chat(browser: Browser, url: str) -> tuple[Page, int]:
    """A resident on the web chat page (phone-sized) who said hello; returns the page and resident id."""
    page = await (await browser.new_context(viewport=VIEWPORTS["phone"], locale="id-ID")).new_page()
    await page.goto(url + "/")
    await page.fill("#text", "halo")
    await page.press("#text", "Enter")
    await expect(page.locator(".msg.bot").last).to_be_visible()
    session_id = await page.evaluate("localStorage.getItem('pontibot.session')")
    return page, session_id


async def resident_id(server: LiveServer, session_id: str) -> int:
    async with server.runtime.db.session() as session:
        found = await session.execute(select(Resident.id).where(Resident.external_id == session_id))
        return int(found.scalar_one())


async def sign_in(browser: Browser, url: str, username: str, width: str) -> Page:
    page = await (await browser.new_context(viewport=VIEWPORTS[width], locale="id-ID")).new_page()
    await page.goto(url + "/staff/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Antrean percakapan")
    return page


def road_photo() -> bytes:
    """A small JPEG standing in for a resident's photo: asphalt with a dark pothole."""
    image = Image.new("RGB", (640, 480), (118, 118, 112))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 330, 640, 480), fill=(96, 140, 70))
    draw.line((320, 0, 320, 330), fill=(235, 235, 220), width=8)
    draw.ellipse((180, 170, 430, 290), fill=(48, 44, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


async def some_complaints(server: LiveServer, clock: Clock, reporter: int) -> Any:
    """A realistic mix: overdue and fresh, several categories and kelurahan, one with a photo."""
    rt = server.runtime
    media = (road_photo(),)
    await file_complaint(
        rt,
        resident_id=None,
        category="street_light",
        description="Lampu jalan mati tiga tiang berturut-turut, gelap sekali malam hari.",
        kelurahan_code="61.71.02.1001",
        address="Jl. Ahmad Yani dekat Bundaran Digulis",
    )
    await file_complaint(
        rt,
        resident_id=None,
        category="garbage",
        description="Sampah menumpuk di TPS sudah seminggu tidak diangkut, bau menyengat.",
        kelurahan_code="61.71.03.1003",
        address=None,
    )
    clock.advance(days=12)
    await file_complaint(
        rt,
        resident_id=None,
        category="drainage_flood",
        description="Parit tersumbat, air naik ke jalan setiap hujan deras.",
        kelurahan_code="61.71.04.1002",
        address="Gg. Sepakat 2",
    )
    await file_complaint(
        rt,
        resident_id=None,
        category="illegal_parking",
        description="Parkir liar di trotoar depan pasar, pejalan kaki turun ke jalan.",
        kelurahan_code=None,
        address="Pasar Flamboyan",
    )
    return await file_complaint(
        rt,
        resident_id=reporter,
        category="road_damage",
        description="Jalan berlubang besar di depan SD 14, dua motor jatuh minggu ini. Hubungi 081234567890.",
        media=media,
    )


@pytest.mark.parametrize("width", list(VIEWPORTS))
async def test_staff_change_a_complaint_status_and_the_resident_reads_the_notice(
    browser: Browser,
    live_server: LiveServer,
    clock: Clock,
    dispatching: OutboxDispatcher,
    shots: Path,
    width: str,
) -> None:
    await add_staff(live_server.runtime, "sari", "admin", "Sari")
    warga, session_id = await open_web_chat(browser, live_server.url)
    complaint = await some_complaints(live_server, clock, await resident_id(live_server, session_id))
    staff = await sign_in(browser, live_server.url, "sari", width)

    await staff.click("nav >> text=Pengaduan")
    await expect(staff.locator("h1")).to_have_text("Pengaduan warga")
    await expect(staff.locator("table.list")).to_contain_text(complaint.ticket)
    await expect(staff.locator("table.list")).not_to_contain_text("081234567890")
    await staff.screenshot(path=shots / f"{width}-8-complaints.png", full_page=True)

    await staff.click("text=Lewat tenggat")
    await expect(staff.locator("tr.overdue")).to_have_count(2)
    await staff.screenshot(path=shots / f"{width}-9-complaints-overdue.png", full_page=True)

    await staff.click("nav >> text=Pengaduan")
    await staff.click(f"a:has-text('{complaint.ticket}')")
    await expect(staff.locator("h1")).to_contain_text(complaint.ticket)
    await staff.screenshot(path=shots / f"{width}-10-complaint.png", full_page=True)
    await staff.check("input[name=to][value=verified]")
    await staff.fill("textarea[name=note]", NOTE)
    await staff.click("button:has-text('Simpan & kabari warga')")
    await expect(staff.locator(".flash.ok")).to_contain_text("1 warga diberi tahu")
    await expect(staff.locator(".timeline")).to_contain_text(NOTE)

    notice = warga.locator(".msg.push").filter(has_text=NOTE)
    await expect(notice).to_be_visible(timeout=15_000)
    await expect(notice).to_contain_text(complaint.ticket)
    await warga.screenshot(path=shots / f"{width}-11-resident-complaint-notice.png", full_page=True)

    await staff.check("input[name=to][value=forwarded]")
    await expect(staff.locator(".agency-field select")).to_be_visible()
    await staff.screenshot(path=shots / f"{width}-12-complaint-forward-form.png", full_page=True)

    await staff.click("nav >> text=Dasbor")
    await expect(staff.locator(".tile.alarm")).to_contain_text("2")
    await staff.screenshot(path=shots / f"{width}-13-dashboard-sla.png", full_page=True)


async def test_staff_requeue_a_dead_letter_and_the_resident_receives_it(
    browser: Browser, live_server: LiveServer, clock: Clock, dispatching: OutboxDispatcher, shots: Path
) -> None:
    await add_staff(live_server.runtime, "budi", "agent", "Budi")
    warga, session_id = await open_web_chat(browser, live_server.url)
    text = "Kabar izin PBG-2026-00124: berkas Kakak sedang diverifikasi."
    async with live_server.runtime.db.session() as session:
        resident = (
            await session.execute(select(Resident).where(Resident.external_id == session_id))
        ).scalar_one()
        await repo.enqueue_outbox(
            session,
            resident=resident,
            kind="notification",
            body={"text": text, "buttons": []},
            idempotency_key="dl-1",
        )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.idempotency_key == "dl-1")
            .values(status="dead", attempts=8, last_error="Telegram 502 Bad Gateway (8 percobaan)")
        )

    for width in VIEWPORTS:
        staff = await sign_in(browser, live_server.url, "budi", width)
        await staff.click("nav >> text=Gagal kirim")
        await expect(staff.locator(".letters .card")).to_have_count(1)
        await staff.screenshot(path=shots / f"{width}-14-dead-letters.png", full_page=True)
    await staff.click("button:has-text('Kirim ulang')")
    await expect(staff.locator(".flash.ok")).to_contain_text("dikirim ulang")
    await expect(staff.locator(".empty-state")).to_contain_text("Semua pesan terkirim")

    await expect(warga.locator(".msg.push").filter(has_text=text)).to_be_visible(timeout=15_000)
    async with live_server.runtime.db.session() as session:
        row = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == "dl-1"))
        ).scalar_one()
    assert row.status == "sent"


@pytest.mark.parametrize("width", list(VIEWPORTS))
async def test_demo_permits_and_announcement_pages(
    browser: Browser, live_server: LiveServer, shots: Path, width: str
) -> None:
    await add_staff(live_server.runtime, "sari", "admin", "Sari")
    staff = await sign_in(browser, live_server.url, "sari", width)

    await staff.click("nav >> text=Izin demo")
    await staff.click("#p-PBG-2026-00124 button")
    await expect(staff.locator(".flash.ok")).to_contain_text("PBG-2026-00124 kini Verifikasi berkas")
    await staff.screenshot(path=shots / f"{width}-15-demo-permits.png", full_page=True)

    await staff.click("nav >> text=Pengumuman")
    await staff.fill(
        "textarea[name=text]", "Layanan Disdukcapil di MPP tutup Jumat, 27 November, karena pemeliharaan."
    )
    await staff.click("button:has-text('Kirim pengumuman')")
    await expect(staff.locator(".flash.ok")).to_contain_text("diantrekan")
    await expect(staff.locator(".broadcasts li.current")).to_be_visible()
    await staff.screenshot(path=shots / f"{width}-16-broadcast.png", full_page=True)
