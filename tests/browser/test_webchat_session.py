"""Issue 16, finding 5 (and 4) in a real browser: on plain-HTTP booth Wi-Fi (not a secure context, so no
crypto.randomUUID) the page still makes a 128-bit session id, and a 429 is explained in Indonesian."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Route, expect

from bot.app import create_app
from bot.settings import Settings
from flows.texts import Texts
from tests.browser.conftest import VIEWPORTS
from tests.support import serve

TEXTS = Texts.load()
BOOTH_WIFI = "http://booth.wifi"  # a LAN name: plain HTTP is not a secure context there


@pytest.fixture
async def one_session_server(make_settings: Callable[..., Settings]) -> AsyncIterator[str]:
    """The app on real HTTP, allowing one new session per address (and refilling slowly)."""
    settings = make_settings(
        server={
            "address_new_sessions_burst": 1,
            "address_new_sessions_per_minute": 0.5,
        },
    )
    async with serve(create_app(settings)) as url:
        yield url


def forward_to(url: str) -> Callable[[Route], Awaitable[None]]:
    """A route handler serving ``BOOTH_WIFI`` from the real server at ``url``."""

    async def handle(route: Route) -> None:
        response = await route.fetch(url=route.request.url.replace(BOOTH_WIFI, url))
        await route.fulfill(response=response)

    return handle


async def test_on_plain_http_the_page_makes_a_128_bit_id_and_explains_a_429(
    browser: Browser, one_session_server: str, shots: Path
) -> None:
    first = await browser.new_context(viewport=VIEWPORTS["phone"], locale="id-ID")
    await first.route(f"{BOOTH_WIFI}/**", forward_to(one_session_server))
    page = await first.new_page()
    await page.goto(f"{BOOTH_WIFI}/?source=cfd")
    await expect(page.locator(".buttons button").first).to_be_visible(timeout=20_000)

    assert await page.evaluate("window.isSecureContext") is False
    assert await page.evaluate("typeof crypto.randomUUID") == "undefined"
    session_id = await page.evaluate("localStorage.getItem('pontibot.session')")
    assert re.fullmatch(r"cfd-[0-9a-f]{32}", session_id), session_id

    # A second phone behind the same address, over the (tiny) new-session budget of this server.
    second = await browser.new_context(viewport=VIEWPORTS["phone"], locale="id-ID")
    await second.route(f"{BOOTH_WIFI}/**", forward_to(one_session_server))
    other = await second.new_page()
    await other.goto(f"{BOOTH_WIFI}/?source=cfd")
    told = other.locator(".msg.bot.error")
    await expect(told).to_be_visible(timeout=20_000)
    before, after = TEXTS.render("id", "webchat.too_many_sessions", seconds="{seconds}").split("{seconds}")
    assert re.fullmatch(re.escape(before) + r"\d+" + re.escape(after), await told.inner_text())
    await other.screenshot(path=str(shots / "webchat-429-phone.png"))
    await first.close()
    await second.close()
