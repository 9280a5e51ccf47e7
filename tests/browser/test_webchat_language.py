"""Issue 18, point 4 in a real browser: the web chat's header, placeholder and language button follow
the language of the resident's messages, and the button stays on one line on a 390 px phone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from bot.app import create_app
from bot.settings import Settings
from flows.texts import Texts
from tests.browser.conftest import VIEWPORTS
from tests.support import serve

TEXTS = Texts.load()


def label(language: str, key: str) -> str:
    return TEXTS.render(language, f"webchat.{key}")


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[str]:
    """The app on real HTTP."""
    async with serve(create_app(make_settings())) as url:
        yield url


async def expect_labels(page: Page, language: str) -> None:
    await expect(page.locator("#subtitle")).to_have_text(label(language, "subtitle"), timeout=20_000)
    await expect(page.locator("#text")).to_have_attribute("placeholder", label(language, "placeholder"))
    await expect(page.locator("#lang")).to_have_text(label(language, "language_switch"))
    assert await page.evaluate("document.documentElement.lang") == language
    assert await page.title() == label(language, "title")


async def one_line(page: Page) -> bool:
    """The language button's text fits on one line, and nothing makes the page scroll sideways."""
    return bool(
        await page.evaluate(
            """() => {
              const b = document.getElementById("lang");
              const line = parseFloat(getComputedStyle(b).lineHeight) || 20;
              const inner = b.getBoundingClientRect().height - 16;  // padding 2x6 + border 2x2
              return inner < 1.5 * line && b.scrollWidth <= b.clientWidth
                && document.documentElement.scrollWidth <= window.innerWidth;
            }"""
        )
    )


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
async def test_the_page_follows_the_language_of_the_messages(
    browser: Browser, server: str, shots: Path, viewport: str
) -> None:
    context = await browser.new_context(viewport=VIEWPORTS[viewport], locale="id-ID")
    page = await context.new_page()
    await page.goto(f"{server}/")
    await expect(page.locator(".buttons button").first).to_be_visible(timeout=20_000)
    await expect_labels(page, "id")

    await page.fill("#text", "what documents do i need for a family card?")
    await page.press("#text", "Enter")
    await expect_labels(page, "en")
    await expect(page.locator(".msg.bot").last).to_contain_text("Family Card", timeout=20_000)
    assert await one_line(page)
    await page.screenshot(path=str(shots / f"webchat-language-en-{viewport}.png"))

    await page.fill("#text", "kalau syarat bikin ktp apa aja?")
    await page.press("#text", "Enter")
    await expect_labels(page, "id")
    assert await one_line(page)
    await context.close()
