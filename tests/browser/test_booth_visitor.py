"""Issue 10 in a real browser at 390x844: a booth visitor asks, files a complaint with photo and
location from the web chat page, and sees the pushed status change when staff verify it."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, expect

from bot.app import create_app
from bot.settings import Settings
from flows.texts import Texts
from tests.browser.conftest import VIEWPORTS
from tests.support import serve

TEXTS = Texts.load()
TOKEN = "booth-browser-token-0123456789abcdef"
PONTIANAK = {"latitude": -0.0263, "longitude": 109.3425}  # Jl. Tanjungpura, Pontianak Selatan


@pytest.fixture
def booth_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        environ={"PONTIBOT_STAFF__API_TOKEN": TOKEN},
        demo={"enabled": True},
        notifications={"quiet_hours": "", "dispatch_interval_seconds": 0.5},
    )


@pytest.fixture
async def booth_url(booth_settings: Settings, nlu_parser: object) -> AsyncIterator[str]:
    """The whole app as `pontibot demo` runs it: the lifespan starts scheduler and outbox dispatcher."""
    async with serve(create_app(booth_settings, parser=nlu_parser)) as url:
        yield url


def jpeg_photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (120, 110, 100)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


async def bot_says(page: Page, text: str) -> None:
    await expect(page.locator(".msg.bot").filter(has_text=text).last).to_be_visible(timeout=20_000)


async def test_a_booth_visitor_asks_files_a_complaint_and_sees_the_push(
    browser: Browser, booth_url: str, shots: Path, tmp_path: Path
) -> None:
    context = await browser.new_context(
        viewport=VIEWPORTS["phone"], geolocation=PONTIANAK, permissions=["geolocation"], locale="id-ID"
    )
    page = await context.new_page()
    await page.goto(f"{booth_url}/?source=cfd")
    await expect(page.locator(".buttons button").first).to_be_visible(timeout=20_000)

    await page.fill("#text", "syarat bikin KTP")
    await page.press("#text", "Enter")
    await bot_says(page, "KTP")
    await page.screenshot(path=str(shots / "booth-visitor-1-documents.png"))

    await page.fill("#text", "ada jalan berlubang besar, bahaya buat motor")
    await page.press("#text", "Enter")
    await bot_says(page, TEXTS.render("id", "complaints.ask_location")[:20])
    await page.click("#locate")
    await bot_says(page, TEXTS.render("id", "complaints.ask_photo")[:20])
    photo = tmp_path / "lubang.jpg"
    photo.write_bytes(jpeg_photo())
    await page.set_input_files("#photo", str(photo))
    await bot_says(page, "Kirim laporan ini?")
    await page.get_by_role("button", name=TEXTS.render("id", "complaints.button_send")).last.click()
    await bot_says(page, "Nomor tiket")
    filed = await page.locator(".msg.bot").filter(has_text="Nomor tiket").last.inner_text()
    ticket = re.search(r"ADU-\d{4}-\d{6}", filed)
    assert ticket is not None, filed
    await page.screenshot(path=str(shots / "booth-visitor-2-filed.png"))

    async with httpx.AsyncClient(base_url=booth_url, headers={"Authorization": f"Bearer {TOKEN}"}) as staff:
        changed = await staff.post(
            f"/api/staff/complaints/{ticket.group()}/status",
            json={"status": "verified", "note": "Sudah dicek petugas lapangan."},
        )
    assert changed.status_code == 200, changed.text

    pushed = TEXTS.render("id", "notify.complaint.verified", ticket=ticket.group())
    await expect(page.locator(".msg.bot.push").filter(has_text=ticket.group()).last).to_be_visible(
        timeout=20_000
    )
    shown = await page.locator(".msg.bot.push").last.inner_text()
    assert pushed.splitlines()[0] in shown
    await page.screenshot(path=str(shots / "booth-visitor-3-pushed.png"))

    booth = await context.new_page()
    await booth.set_viewport_size({"width": 1280, "height": 800})
    await booth.goto(f"{booth_url}/booth")
    await expect(booth.locator("#complaints")).to_have_text("1", timeout=10_000)
    await expect(booth.locator("#visitors")).to_have_text("1")
    await booth.screenshot(path=str(shots / "booth-screen.png"))
    await context.close()
