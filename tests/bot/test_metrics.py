"""/metrics over real HTTP: the figures move with traffic (messages, turns, intents, fallbacks) and with
the database (outbox depth, oldest due row, dead letters); back-end calls and their breaker are counted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import update

from bot.metrics import MULTIPROC_ENV, Metrics, shared_across_workers
from integrations.base import BackendUnavailable
from integrations.resilience import CircuitBreaker, ResilientClient, RetryPolicy
from storage import repositories as repo
from storage.models import OutboxMessage
from tests.conftest import REPO, LiveServer
from tests.factories import resident
from tests.flows.conftest import Chat
from tests.support import cli_env, eventually, free_port, start_pontibot
from tests.support.cli import START_TIMEOUT
from tests.support.metrics import queryable_names, sample, total

OPS_DOCS = (REPO / "docs/ops/grafana-dashboard.json", REPO / "docs/ops/alerts.yml", REPO / "docs/DEPLOY.md")
METRIC_NAME = re.compile(r"\bpontibot_[a-z0-9_]+")


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """The live server with the database figures read at every scrape (no cache between two scrapes)."""
    live_server.runtime.database_gauges.cache_seconds = 0
    return live_server


async def scrape(server: LiveServer) -> str:
    """GET /metrics."""
    response = await server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_web_chat_turns_count_messages_both_ways_turns_intents_and_time(server: LiveServer) -> None:
    before = await scrape(server)
    resident_chat = Chat(server, "web-metrics-1")

    greeting = await resident_chat.say("halo")
    menu = await resident_chat.say("menu")

    after = await scrape(server)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("pontibot_turns_total", channel="webchat") == 2
    assert moved("pontibot_messages_total", channel="webchat", direction="in") == 2
    assert moved("pontibot_messages_total", channel="webchat", direction="out") == len(greeting) + len(menu)
    assert moved("pontibot_turn_duration_seconds_count", channel="webchat") == 2
    assert moved("pontibot_intents_total", intent="greet") == 1
    assert moved("pontibot_webchat_sessions_started_total") == 1
    assert moved("pontibot_fallbacks_total", channel="webchat") == 0
    assert sample(after, "pontibot_conversations_active", channel="webchat") >= 1
    assert sample(after, "pontibot_database_up") == 1


async def test_a_message_the_bot_does_not_understand_is_a_fallback(server: LiveServer) -> None:
    before = await scrape(server)

    await Chat(server, "web-metrics-2").say("???")

    after = await scrape(server)
    assert (
        sample(after, "pontibot_fallbacks_total", channel="webchat")
        - sample(before, "pontibot_fallbacks_total", channel="webchat")
        == 1
    )
    assert (
        sample(after, "pontibot_turns_total", channel="webchat")
        - sample(before, "pontibot_turns_total", channel="webchat")
        == 1
    )


async def test_queued_notifications_show_in_outbox_depth_oldest_due_age_and_dead_letters(
    server: LiveServer,
) -> None:
    before = await scrape(server)
    assert sample(before, "pontibot_outbox_depth", channel="telegram") == 0
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    async with server.runtime.db.session() as session:
        someone = await resident(session, "tg-metrics", channel="telegram")
        await session.flush()
        for key in ("due", "later", "given-up"):
            not_before = long_ago if key != "later" else datetime.now(UTC) + timedelta(hours=1)
            body = {"text": "Status izin Anda berubah"}
            await repo.enqueue_outbox(
                session,
                resident=someone,
                kind="notification",
                body=body,
                idempotency_key=key,
                not_before=not_before,
            )
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.idempotency_key == "given-up").values(status="dead")
        )

    after = await scrape(server)  # the scheduler is not started here: the rows stay queued

    assert sample(after, "pontibot_outbox_depth", channel="telegram") == 2
    assert 600 <= sample(after, "pontibot_outbox_oldest_due_age_seconds", channel="telegram") < 700
    assert sample(after, "pontibot_outbox_dead_letters", channel="telegram") == 1
    assert sample(after, "pontibot_outbox_depth", channel="webchat") == 0


async def test_back_end_calls_count_by_outcome_and_show_the_breaker_state() -> None:
    metrics = Metrics()

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    client = ResilientClient(
        name="permits-test",
        base_url="http://permits.invalid",
        retry=RetryPolicy(attempts=1),
        breaker=CircuitBreaker(failure_threshold=2, reset_after=60),
        transport=httpx.MockTransport(failing),
        observer=metrics.backend_call,
    )
    try:
        for _ in range(3):
            with pytest.raises(BackendUnavailable):
                await client.request("GET", "permits/1")
    finally:
        await client.aclose()

    text = metrics.exposition(_Nothing()).decode()
    assert sample(text, "pontibot_backend_calls_total", backend="permits-test", outcome="error") == 2
    assert sample(text, "pontibot_backend_calls_total", backend="permits-test", outcome="circuit_open") == 1
    assert sample(text, "pontibot_backend_circuit_state", backend="permits-test") == 2
    assert total(text, "pontibot_backend_call_duration_seconds_count", backend="permits-test") == 3


class _Nothing:
    """No database figures."""

    def collect(self) -> list[object]:
        return []


def names_used(path: Path) -> set[str]:
    """Every ``pontibot_…`` name a document mentions (in DEPLOY.md: its Monitoring section)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        text = text.split("\n## Monitoring\n", 1)[1].split("\n## ", 1)[0]
    return set(METRIC_NAME.findall(text))


async def test_the_dashboard_alerts_and_deploy_guide_use_only_names_that_metrics_exposes(
    server: LiveServer,
) -> None:
    exposed = queryable_names(await scrape(server))
    json.loads(OPS_DOCS[0].read_text(encoding="utf-8"))  # Grafana imports it: it must be JSON

    unknown = {str(path.relative_to(REPO)): sorted(names_used(path) - exposed) for path in OPS_DOCS}

    assert unknown == {str(path.relative_to(REPO)): [] for path in OPS_DOCS}
    assert all(names_used(path) for path in OPS_DOCS)


STALE_RUN = """
from prometheus_client import Counter
Counter("pontibot_turns", "", ["channel"]).labels("webchat").inc(1000)
"""


def turns_per_worker(directory: Path) -> dict[str, float]:
    """Each worker's own web chat turns, from its file in the multiprocess directory."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            for s in metric.samples:
                if s.name == "pontibot_turns_total" and s.labels == {"channel": "webchat"} and s.value:
                    counts[path.stem] = s.value
    return counts


@pytest.mark.timeout(300)
async def test_several_workers_serve_one_set_of_figures(
    database_url: str, nlu_model_dir: Path, nlu_parser: object, tmp_path: Path
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = cli_env(
        database_url=database_url, nlu_model_dir=nlu_model_dir, PROMETHEUS_MULTIPROC_DIR=str(shared)
    )
    # An earlier run's files: `pontibot run` must empty the directory, or its 1000 turns would count.
    subprocess.run([sys.executable, "-c", STALE_RUN], env=env, check=True)
    assert turns_per_worker(shared) != {}
    port = free_port()
    supervisor = start_pontibot(
        "run", "--workers", "2", "--port", str(port), env=env, log=tmp_path / "run.log", port=port, group=True
    )
    sent = 0
    try:
        await eventually(
            lambda: supervisor.output().count("pontibot ready on") == 2,
            START_TIMEOUT,
            0.2,
            what="both workers ready",
        )

        async def both_workers_counted_turns() -> bool:
            nonlocal sent
            async with httpx.AsyncClient(base_url=supervisor.url, timeout=30) as client:  # a new connection
                response = await client.post(
                    "/api/chat", json={"session_id": f"w-{sent % 5}", "text": "halo"}
                )
            assert response.status_code == 200, response.text
            sent += 1
            return len(turns_per_worker(shared)) == 2

        await eventually(both_workers_counted_turns, 120, 0, what="turns handled by each of two workers")
        for _ in range(4):  # whichever worker answers the scrape, it reports every worker's turns
            async with httpx.AsyncClient(base_url=supervisor.url, timeout=30) as client:
                text = (await client.get("/metrics")).text
            assert sample(text, "pontibot_turns_total", channel="webchat") == sent
            assert sample(text, "pontibot_nlu_model_info", backend="embedded", version=_version(text)) == 1
    finally:
        supervisor.stop()


def _version(exposition: str) -> str:
    match = re.search(r'pontibot_nlu_model_info\{backend="embedded",version="([^"]+)"\}', exposition)
    assert match, exposition
    return match.group(1)


def test_the_supervisor_gives_several_workers_a_fresh_directory_and_removes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with shared_across_workers(1) as one:
        assert one is None and MULTIPROC_ENV not in os.environ
    with shared_across_workers(2) as several:
        assert several is not None and several.is_dir() and os.environ[MULTIPROC_ENV] == str(several)
    assert not several.exists() and MULTIPROC_ENV not in os.environ

    operators = tmp_path / "metrics"
    operators.mkdir()
    (operators / "counter_4242.db").write_bytes(b"an earlier run")
    monkeypatch.setenv(MULTIPROC_ENV, str(operators))
    with shared_across_workers(1) as chosen:
        assert chosen == operators and list(operators.iterdir()) == []
    assert operators.is_dir()
