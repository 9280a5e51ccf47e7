"""Several worker processes on one PostgreSQL (DESIGN 8): order per conversation, one scheduler leader.

Real ``pontibot run`` processes (``python -m bot run``) share the test's PostgreSQL database; Telegram is
the fake Bot API server in webhook mode. SQLite has one writer on one machine, so these run in the
PostgreSQL pass of ``.ci/run`` (they use ``database_url`` and carry the ``db`` marker).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from bot.settings import load_settings
from flows.messages import Reply
from storage import repositories as repo
from storage.db import Database
from storage.models import Conversation, Message, OutboxMessage, Resident
from tests.conftest import REPO
from tests.support import (
    Running,
    cli_env,
    eventually,
    free_port,
    nothing_arrives,
    start_pontibot,
    until_healthy,
)
from tests.support.cli import START_TIMEOUT
from tests.support.fake_telegram import FakeTelegram

pytestmark = pytest.mark.timeout(300)

LEADS = "scheduler: this process leads"
TAKEOVER_LIMIT = 30.0


@pytest.fixture
def pg_url(database_url: str) -> str:
    """The test's database, which must be PostgreSQL (several processes share it)."""
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "several workers need PostgreSQL: runs with PONTIBOT_TEST_DATABASE_URL (.ci/run's PG pass)"
        )
    return database_url


def leads(worker: Running) -> bool:
    """True once the worker logged that it leads the scheduler."""
    return LEADS in worker.output()


def write_config(tmp_path: Path, fake: FakeTelegram, port: int, media: Path) -> Path:
    """The repository config.yml with this worker's port, webhook mode and no quiet hours."""
    data: dict[str, Any] = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    data["server"].update(port=port, public_url=f"http://127.0.0.1:{port}", media_dir=str(media))
    data["telegram"].update(
        mode="webhook", base_url=fake.base_url, webhook_url=f"http://127.0.0.1:{port}/webhooks/telegram"
    )
    data.setdefault("notifications", {}).update(quiet_hours="", dispatch_interval_seconds=0.5)
    path = tmp_path / f"config-{port}.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    load_settings(path, environ={})  # fail here, not in the subprocess, if the config is wrong
    return path


def start_worker(tmp_path: Path, url: str, fake: FakeTelegram, model_dir: Path) -> Running:
    """Start one ``pontibot run`` on a free port (not yet waited for)."""
    port = free_port()
    config = write_config(tmp_path, fake, port, tmp_path / "media")
    env = cli_env(DATABASE_URL=url, TELEGRAM_BOT_TOKEN=fake.token, PONTIBOT_NLU__MODEL_DIR=str(model_dir))
    return start_pontibot("run", "-c", str(config), env=env, log=tmp_path / f"worker-{port}.log", port=port)


@asynccontextmanager
async def two_workers(
    tmp_path: Path, url: str, fake: FakeTelegram, model_dir: Path
) -> AsyncIterator[list[Running]]:
    """Two ``pontibot run`` processes on different ports, one database; stopped (or reaped) after."""
    workers = [start_worker(tmp_path, url, fake, model_dir) for _ in range(2)]
    try:
        await asyncio.gather(*(until_healthy(worker) for worker in workers))
        yield workers
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.stop()


async def transcript(db: Database, session_id: str) -> tuple[int, list[tuple[str, str]]]:
    """The web chat conversation's turns and its transcript as (direction, text), in stored order."""
    async with db.session() as session:
        resident = (
            await session.execute(
                select(Resident).where(Resident.channel == "webchat", Resident.external_id == session_id)
            )
        ).scalar_one()
        conversation = (
            await session.execute(select(Conversation).where(Conversation.resident_id == resident.id))
        ).scalar_one()
        rows = (
            await session.execute(
                select(Message.direction, Message.text)
                .where(Message.conversation_id == conversation.id)
                .order_by(Message.id)
            )
        ).all()
    return conversation.turns, [(direction, text or "") for direction, text in rows]


async def queue_notifications(db: Database, prefix: str, count: int) -> list[str]:
    """Queue one pushed message each to ``count`` Telegram residents; their texts."""
    texts = [f"{prefix} pemberitahuan {i}" for i in range(count)]
    async with db.session() as session:
        for i, text in enumerate(texts):
            resident = await repo.get_or_create_resident(
                session, channel="telegram", external_id=str(7000 + i)
            )
            await repo.enqueue_outbox(
                session,
                resident=resident,
                kind="notification",
                body=Reply(text).to_dict(),
                idempotency_key=text,
            )
    return texts


async def outbox_statuses(db: Database) -> Counter[str]:
    """How many outbox rows are in each status."""
    async with db.session() as session:
        return Counter((await session.execute(select(OutboxMessage.status))).scalars())


async def test_interleaved_messages_of_one_conversation_keep_order_and_state(
    pg_url: str, tmp_path: Path, fake_telegram: FakeTelegram, nlu_model_dir: Path, nlu_parser: object
) -> None:
    conversation = ["halo", "cek status izin", "PBG-2026-00123", "jam buka kantor", "terima kasih", "halo"]
    async with two_workers(tmp_path, pg_url, fake_telegram, nlu_model_dir) as workers:
        db = Database(pg_url)
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                # One resident, each message to the other worker in turn: the state travels via PostgreSQL.
                answers = []
                for i, text in enumerate(conversation):
                    response = await client.post(
                        f"{workers[i % 2].url}/api/chat", json={"session_id": "warga-seq", "text": text}
                    )
                    assert response.status_code == 200
                    answers.append(" ".join(r["text"] or "" for r in response.json()["replies"]))
                assert "PBG-2026-00123" in answers[2]  # worker 2 continued the flow worker 1 started

                turns, lines = await transcript(db, "warga-seq")
                assert turns == len(conversation)
                assert [text for direction, text in lines if direction == "in"] == conversation

                # The same resident typing fast: 20 messages at once, alternating workers.
                burst = [f"halo {i}" for i in range(20)]
                responses = await asyncio.gather(
                    *(
                        client.post(
                            f"{workers[i % 2].url}/api/chat", json={"session_id": "warga-burst", "text": t}
                        )
                        for i, t in enumerate(burst)
                    )
                )
            assert [r.status_code for r in responses] == [200] * len(burst)
            turns, lines = await transcript(db, "warga-burst")
            assert turns == len(burst)
            assert sorted(text for direction, text in lines if direction == "in") == sorted(burst)
            # Turns never interleave: each inbound line is followed by its own replies before the next one.
            directions = "".join("i" if direction == "in" else "o" for direction, _ in lines)
            assert directions.count("i") == len(burst)
            assert "ii" not in directions
            assert directions.startswith("i")
        finally:
            await db.dispose()


async def test_one_leader_takes_over_within_30s_and_sends_each_notification_once(
    pg_url: str, tmp_path: Path, fake_telegram: FakeTelegram, nlu_model_dir: Path, nlu_parser: object
) -> None:
    async with two_workers(tmp_path, pg_url, fake_telegram, nlu_model_dir) as workers:
        db = Database(pg_url)
        try:
            await eventually(lambda: any(leads(w) for w in workers), 30, 0.2, what="a scheduler leader")
            await nothing_arrives(  # a second would-be leader would have logged by now
                lambda: sum(leads(w) for w in workers) > 1, within=1
            )
            leaders = [w for w in workers if leads(w)]
            assert len(leaders) == 1, [w.output() for w in workers]
            leader, follower = leaders[0], next(w for w in workers if w is not leaders[0])

            first = await queue_notifications(db, "satu", 10)
            await eventually(
                lambda: sum(1 for c in fake_telegram.sent() if c.params.get("text") in first) == len(first),
                30,
                0.2,
                what="the leader sends the first batch",
            )

            leader.process.send_signal(signal.SIGKILL)
            leader.process.wait()
            killed_at = time.monotonic()
            second = await queue_notifications(db, "dua", 10)
            await eventually(lambda: leads(follower), TAKEOVER_LIMIT, 0.2, what="the other worker takes over")
            await eventually(
                lambda: sum(1 for c in fake_telegram.sent() if c.params.get("text") in second) == len(second),
                TAKEOVER_LIMIT,
                0.2,
                what="the new leader sends the second batch",
            )
            assert time.monotonic() - killed_at <= TAKEOVER_LIMIT + 1

            sent = Counter(c.params.get("text") for c in fake_telegram.sent())
            assert {text: sent[text] for text in first + second} == dict.fromkeys(first + second, 1)
            every_row_sent = Counter({"sent": len(first) + len(second)})

            async def all_marked_sent() -> bool:
                return await outbox_statuses(db) == every_row_sent

            # Telegram got each message before the sender committed "sent": wait for the commits.
            await eventually(all_marked_sent, 10, 0.2, what=f"{every_row_sent} in the outbox")
        finally:
            await db.dispose()


async def test_pontibot_run_workers_2_serves_with_two_processes_and_one_leader(
    pg_url: str, tmp_path: Path, fake_telegram: FakeTelegram, nlu_model_dir: Path, nlu_parser: object
) -> None:
    port = free_port()
    config = write_config(tmp_path, fake_telegram, port, tmp_path / "media")
    env = cli_env(
        DATABASE_URL=pg_url,
        TELEGRAM_BOT_TOKEN=fake_telegram.token,
        PONTIBOT_NLU__MODEL_DIR=str(nlu_model_dir),
    )
    supervisor = start_pontibot(  # the supervisor and its workers: one process group
        "run",
        "-c",
        str(config),
        "--workers",
        "2",
        env=env,
        log=tmp_path / "workers.log",
        port=port,
        group=True,
    )
    try:
        await eventually(
            lambda: supervisor.output().count("Application startup complete") == 2,
            START_TIMEOUT,
            0.2,
            what="two workers started",
        )
        await eventually(lambda: leads(supervisor), 30, 0.2, what="a scheduler leader")
        async with httpx.AsyncClient(timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"{supervisor.url}/api/chat", json={"session_id": f"w{i}", "text": "halo"})
                    for i in range(20)
                )
            )
        assert [r.status_code for r in responses] == [200] * 20
        await nothing_arrives(lambda: supervisor.output().count(LEADS) > 1, within=1)
        assert supervisor.output().count(LEADS) == 1
    finally:
        supervisor.stop()


def test_polling_is_refused_with_several_workers() -> None:
    from bot.settings import ConfigError

    environ = {"TELEGRAM_BOT_TOKEN": "123:abc"}
    with pytest.raises(ConfigError, match="only one process may poll Telegram"):
        load_settings(REPO / "config.yml", environ=environ, server={"workers": 2})
    assert load_settings(REPO / "config.yml", environ=environ, server={"workers": 1}).server.workers == 1
    webhook = {"mode": "webhook", "webhook_url": "https://bot.example/webhooks/telegram"}
    assert load_settings(REPO / "config.yml", environ=environ, server={"workers": 2}, telegram=webhook)
