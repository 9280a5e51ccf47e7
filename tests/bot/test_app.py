"""The app's own endpoints over real HTTP: /metrics counts handled messages per channel, the favicon."""

from __future__ import annotations

from tests.conftest import LiveServer
from tests.factories import chat_body


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
