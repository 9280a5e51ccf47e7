"""HTTP edges: security headers (CSP without external origins, HSTS on https), body and media size
limits that store nothing, and a Telegram run whose logs never show the bot token."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bot.app import create_app
from bot.logs import configure_logging, secret_values
from bot.runtime import Runtime
from bot.settings import Settings
from storage.models import Message, ProcessedMessage, Resident
from tests.bot.channels.conftest import load_update
from tests.conftest import LiveServer
from tests.reliability.conftest import count
from tests.support.logs import remove_log_handlers

PAGES = ["/", "/staff/login", "/healthz", "/api/chat/s-1/events"]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_has_a_csp_without_external_origins(live_server: LiveServer, path: str) -> None:
    response = await live_server.client.get(path)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "http" not in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in response.headers  # served over http here


async def test_hsts_when_the_public_url_is_https(
    make_settings: Callable[..., Settings], runtime: Runtime
) -> None:
    https = make_settings(server={"public_url": "https://bot.pontianak.go.id"})
    app = create_app(https, runtime=runtime)
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")


async def test_the_openapi_docs_page_gets_its_own_narrow_policy(live_server: LiveServer) -> None:
    csp = (await live_server.client.get("/docs")).headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in csp and "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("path", ["/api/chat", "/model/parse", "/webhooks/telegram", "/webhooks/whatsapp"])
async def test_oversized_bodies_are_refused_before_parsing_and_store_nothing(
    live_server: LiveServer, path: str
) -> None:
    limit = live_server.runtime.settings.server.max_body_bytes
    body = b'{"session_id": "big", "text": "' + b"a" * (limit + 10) + b'"}'
    response = await live_server.client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    rt = live_server.runtime
    assert (await count(rt, Message), await count(rt, ProcessedMessage), await count(rt, Resident)) == (
        0,
        0,
        0,
    )


async def test_an_oversized_photo_is_refused_and_nothing_is_kept(live_server: LiveServer) -> None:
    rt = live_server.runtime
    too_big = b"\xff\xd8\xff\xe0" + b"\0" * (rt.settings.server.media_max_bytes + 70_000)
    response = await live_server.client.post(
        "/api/chat/photo", data={"session_id": "big-photo"}, files={"photo": ("a.jpg", too_big, "image/jpeg")}
    )
    assert response.status_code == 413
    assert await count(rt, Message) == 0
    assert not any(rt.media.root.glob("*/*")) if rt.media.root.exists() else True


@pytest.fixture
def captured_debug() -> Iterator[io.StringIO]:
    """The production handler at DEBUG, telegram/httpx loggers at DEBUG too (the worst case)."""
    stream = io.StringIO()
    yield stream
    remove_log_handlers()
    for name in ("httpx", "httpcore", "telegram"):
        logging.getLogger(name).setLevel(logging.WARNING)


async def test_a_telegram_run_never_logs_the_bot_token(
    serve_telegram_bot: Any, captured_debug: io.StringIO
) -> None:
    async with serve_telegram_bot(mode="polling") as bot:
        configure_logging("DEBUG", stream=captured_debug, secrets=secret_values(bot.runtime.settings))
        for name in ("httpx", "httpcore", "telegram"):
            logging.getLogger(name).setLevel(logging.DEBUG)  # httpx logs every Bot API URL
        update_id = bot.fake.push_update(load_update("text", update_id=9100))
        await bot.settle(update_id)
        bot.fake.fail_next("sendMessage", status=500, description="Internal Server Error")
        update_id = bot.fake.push_update(load_update("text", update_id=9101))
        await bot.settle(update_id)

    output = captured_debug.getvalue()
    token = bot.fake.token
    assert "api.telegram.org" in output or bot.fake.base_url in output  # the URLs were logged …
    assert "bot<secret>" in output  # … with the token masked
    assert token not in output
    assert token.split(":", 1)[1] not in output
