"""The app's own endpoints over real HTTP: /metrics counts handled messages per channel, the favicon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.app import create_app
from bot.settings import Settings
from bot.wiring import SchemaOutOfDate
from tests.conftest import LiveServer
from tests.factories import chat_body
from tests.support import eventually, serve


def turns(metrics_text: str, channel: str) -> float:
    """The value of ``pontibot_turns_total{channel=...}`` in a Prometheus exposition (0 when absent)."""
    prefix = f'pontibot_turns_total{{channel="{channel}"}} '
    values = [float(line[len(prefix) :]) for line in metrics_text.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


async def test_metrics_count_each_handled_message_once_and_not_its_retry(live_server: LiveServer) -> None:
    before = turns((await live_server.client.get("/metrics")).text, "webchat")

    for _ in range(2):  # the second post is a retry of the same message id: answered, not counted
        response = await live_server.client.post("/api/chat", json=chat_body("halo", message_id="m-1"))
        assert response.status_code == 200
    await live_server.client.post("/api/chat", json=chat_body("menu", message_id="m-2"))
    metrics = await live_server.client.get("/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert turns(metrics.text, "webchat") - before == 2


async def test_the_favicon_is_served_on_every_page(live_server: LiveServer) -> None:
    response = await live_server.client.get("/favicon.ico")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO header


async def test_the_server_answers_at_once_and_is_ready_once_the_model_is_trained(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(nlu={"model_dir": str(tmp_path / "untrained")})  # training takes seconds

    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        live = await client.get("/healthz")
        starting = await client.get("/readyz")
        early_chat = await client.post("/api/chat", json=chat_body("halo", session_id="early"))

        assert (live.status_code, live.json()) == (200, {"status": "starting"})
        assert starting.status_code == 503
        assert starting.json()["ready"] is False and "nlu model" in starting.json()["waiting"]
        assert (early_chat.status_code, early_chat.headers["retry-after"]) == (503, "2")

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, timeout=120, interval=0.2, what="/readyz says ready")
        answered = await client.post("/api/chat", json=chat_body("halo", session_id="later"))

    assert answered.status_code == 200 and answered.json()["replies"]


async def test_a_database_behind_the_migrations_stops_the_server_before_it_listens(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}"})
    app = create_app(settings)

    with pytest.raises(SchemaOutOfDate, match="pontibot db upgrade"):
        async with app.router.lifespan_context(app):  # what uvicorn runs before it listens
            pass


async def test_a_browser_gets_a_page_that_reloads_itself_while_the_server_starts(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(nlu={"model_dir": str(tmp_path / "untrained")})

    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        page = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
        api = await client.get("/api/chat/s-1/events")

    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert '<meta http-equiv="refresh" content="2">' in page.text and "Ponti sedang bersiap" in page.text
    assert (api.status_code, api.json()["error"]["code"]) == (503, "starting")
