"""The console in a real browser at desktop and phone widths: a resident asks for a person in the web
chat, staff sign in, take the handoff and reply, the resident reads it, staff close, the resident rates."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from bot.privacy import mask_text
from flows.handoff import closing_replies
from storage.staff_models import Rating
from tests.bot.staff.conftest import PASSWORD, TEXTS, Clock, add_staff
from tests.browser.conftest import VIEWPORTS
from tests.conftest import LiveServer

REPLY = "Selamat pagi Kak, KTP-el yang hilang bisa dicetak ulang di Disdukcapil dengan surat kehilangan."


async def resident_asks_for_staff(page: Page, url: str) -> None:
    await page.goto(url + "/")
    await page.fill("#text", "mau bicara dengan petugas")
    await page.press("#text", "Enter")
    await expect(page.locator(".msg.bot").last).to_contain_text("petugas")
    await page.fill(
        "#text", "KTP saya hilang waktu banjir kemarin, NIK 6171010101900001. Bagaimana mengurusnya?"
    )
    await page.press("#text", "Enter")


async def sign_in(page: Page, url: str, username: str) -> None:
    await page.goto(url + "/staff")
    assert page.url.startswith(url + "/staff/login"), "the console asks for a login first"
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Antrean percakapan")


@pytest.mark.parametrize("width", list(VIEWPORTS))
async def test_staff_take_a_handoff_reply_and_the_resident_reads_it_in_the_web_chat(
    browser: Browser, live_server: LiveServer, clock: Clock, shots: Path, width: str
) -> None:
    await add_staff(live_server.runtime, "sari", "admin", "Sari")
    await add_staff(live_server.runtime, "budi", "agent", "Budi")
    viewport = VIEWPORTS[width]
    warga = await (await browser.new_context(viewport=VIEWPORTS["phone"], locale="id-ID")).new_page()
    staff = await (await browser.new_context(viewport=viewport, locale="id-ID")).new_page()

    await resident_asks_for_staff(warga, live_server.url)
    await staff.goto(live_server.url + "/staff")
    await staff.screenshot(path=shots / f"{width}-1-login.png", full_page=True)
    await sign_in(staff, live_server.url, "sari")
    card = staff.locator(".card").first
    await expect(card).to_contain_text("Diminta warga")
    await expect(card).to_contain_text(mask_text("6171010101900001"))
    await staff.screenshot(path=shots / f"{width}-2-queue.png", full_page=True)

    await card.click()
    await staff.click("text=Tangani percakapan ini")
    await expect(staff.locator(".side")).to_contain_text("sari")
    await staff.fill("#reply-text", REPLY)
    await staff.click("#reply button[type=submit]")
    await expect(staff.locator(".line.kind-staff").last).to_contain_text(REPLY)
    await staff.evaluate("window.scrollTo(0, 0)")
    await staff.screenshot(path=shots / f"{width}-3-conversation.png", full_page=True)

    staff_bubble = warga.locator(".msg.staff")
    await expect(staff_bubble.last).to_contain_text(REPLY, timeout=15_000)
    await warga.screenshot(path=shots / f"{width}-4-resident-reads-staff-reply.png", full_page=True)

    await staff.click("summary:has-text('Selesaikan percakapan')")
    await staff.fill("textarea[name=note]", "Dijelaskan cetak ulang KTP-el; warga akan datang Selasa.")
    await staff.click("button:has-text('Selesaikan')")
    await expect(staff.locator("h1")).to_have_text("Antrean percakapan")
    await expect(staff.locator(".empty-state")).to_be_visible()

    rating_question = closing_replies(TEXTS, "id")[-1].text
    await expect(warga.locator(".msg").filter(has_text=rating_question)).to_be_visible(timeout=15_000)
    await warga.click("button:has-text('5 ⭐')")
    await expect(warga.locator(".msg.bot").last).to_contain_text(TEXTS.render("id", "handoff.rating_thanks"))
    await warga.screenshot(path=shots / f"{width}-5-resident-rated.png", full_page=True)

    await staff.click("nav >> text=Dasbor")
    await expect(staff.locator(".tile").nth(3)).to_contain_text("5.0")
    await staff.screenshot(path=shots / f"{width}-6-dashboard.png", full_page=True)
    await staff.click("nav >> text=Log audit")
    await expect(staff.locator("table.audit")).to_contain_text("handoff.close")
    await staff.screenshot(path=shots / f"{width}-7-audit.png", full_page=True)

    async with live_server.runtime.db.session() as session:
        assert (await session.execute(select(Rating.score))).scalars().all() == [5]


async def test_without_a_session_pages_lead_to_the_login_and_the_api_answers_401(
    browser: Browser, live_server: LiveServer
) -> None:
    page = await (await browser.new_context(viewport=VIEWPORTS["phone"])).new_page()

    landed = []
    for path in (
        "/staff",
        "/staff/dashboard",
        "/staff/audit",
        "/staff/handoffs/1",
        "/staff/handoffs/1?reveal=1",
    ):
        await page.goto(live_server.url + path)
        landed.append(page.url.removeprefix(live_server.url).split("?")[0])
    api = [
        (await page.request.get(live_server.url + path)).status
        for path in ("/api/staff/me", "/api/staff/handoffs", "/api/staff/dashboard", "/api/staff/audit")
    ]
    posted = (
        await page.request.post(live_server.url + "/api/staff/handoffs/1/reply", data={"text": "x"})
    ).status

    assert landed == ["/staff/login"] * 5
    assert api == [401] * 4
    assert posted == 401
