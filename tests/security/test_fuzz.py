"""Fuzzing: hypothesis over the message path, schemathesis over the OpenAPI document.

* Any message a channel can hand the dispatcher (any text, payload, location, kind) is answered
  or kept without a crash, and stored exactly once.
* Every operation of the HTTP surface residents, platforms and staff reach — /api/chat, its photo
  and events, /model/parse, /webhooks/*, /api/staff/* — is called with schema-driven and invalid
  input on a real server: never a 5xx, and a rejected request (4xx) stores nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import func, select

from bot.app import create_app
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from bot.wiring import build_runtime, close_runtime, start_runtime
from flows.messages import Channel, ContentKind, IncomingMessage, Location
from storage.migrate import upgrade
from storage.models import Message
from tests.channels.fake_telegram import FakeTelegram
from tests.channels.fake_twilio import SANDBOX_FROM, FakeTwilio
from tests.conftest import REPO, free_port

STAFF_TOKEN = "fuzz-staff-token-0123456789abcdef"
WEBHOOK_SECRET = "fuzz-webhook-secret"
PAYLOADS = [
    "/erase_data",
    "/my_data",
    "/affirm",
    "/deny",
    "/greet",
    "/cancel",
    '/permit_status{"permit_number": "PBG-2026-00123"}',
    '/document_requirements{"document_type": "ktp_el"}',
    "/subscribe_updates{",
    '/talk_to_staff{"x": [1, {"y": null}]}',
    "/",
    "//",
]
STORED_TABLES = ("residents", "conversations", "messages", "processed_messages", "complaints", "outbox")

texts = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=6000),
    st.sampled_from(["hapus data saya", "data saya", "ya", "batal", "\x00", "﷽" * 50, "🙏" * 200]),
)
messages = st.builds(
    dict,
    chat=st.sampled_from(["fz-1", "fz-2", "fz-3"]),
    channel=st.sampled_from([Channel.WEBCHAT, Channel.TELEGRAM, Channel.WHATSAPP]),
    text=texts,
    payload=st.one_of(st.none(), st.sampled_from(PAYLOADS), st.text(max_size=80).map(lambda s: "/" + s)),
    location=st.one_of(
        st.none(),
        st.builds(
            Location,
            st.floats(-90, 90, allow_nan=False),
            st.floats(-180, 180, allow_nan=False),
            address=st.one_of(st.none(), st.text(max_size=60)),
            label=st.one_of(st.none(), st.text(max_size=60)),
        ),
    ),
    kind=st.sampled_from(list(ContentKind)),
)


async def _one(rt: Runtime, spec: dict[str, Any], number: int) -> None:
    msg = IncomingMessage(
        channel=spec["channel"],
        chat_id=spec["chat"],
        user_id=spec["chat"],
        message_id=f"fz-{number}",
        text=spec["text"],
        payload=spec["payload"],
        location=spec["location"],
        kind=spec["kind"],
    )
    async with rt.db.session() as session:
        before = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
    result = await rt.dispatcher.handle(msg)
    assert not result.failed, spec
    async with rt.db.session() as session:
        stored = (
            await session.execute(select(func.count()).select_from(Message).where(Message.direction == "in"))
        ).scalar_one()
        after = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
    assert after >= before
    assert stored >= 1


def test_any_message_is_handled_without_a_crash_and_stored(settings: Settings, nlu_parser: Any) -> None:
    numbers = iter(range(1, 1_000_000))
    with asyncio.Runner() as runner:
        rt = runner.run(build_runtime(settings, parser=nlu_parser))
        rt.dispatcher.flood = None  # every example is a real turn
        try:

            @settings_fuzz
            @given(spec=messages)
            def check(spec: dict[str, Any]) -> None:
                runner.run(_one(rt, spec, next(numbers)))

            check()
        finally:
            runner.run(close_runtime(rt))


settings_fuzz = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the HTTP surface, from its OpenAPI document ----------------------------------------------


@dataclass
class FuzzServer:
    url: str
    database: Path


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, nlu_parser: Any) -> Iterator[FuzzServer]:
    """pontibot with every surface on (Telegram webhook, WhatsApp, staff API) in its own thread."""
    tmp = tmp_path_factory.mktemp("fuzz")
    database = tmp / "fuzz.db"
    url_db = f"sqlite+aiosqlite:///{database}"
    upgrade(url_db)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeTelegram() as telegram, FakeTwilio() as twilio:
        bot_settings = load_settings(
            REPO / "config.yml",
            environ={
                "TELEGRAM_BOT_TOKEN": telegram.token,
                "TWILIO_ACCOUNT_SID": twilio.account_sid,
                "TWILIO_AUTH_TOKEN": twilio.auth_token,
                "PONTIBOT_STAFF__API_TOKEN": STAFF_TOKEN,
            },
            database={"url": url_db},
            nlu={"model_dir": str(tmp / "nlu")},
            server={"media_dir": str(tmp / "media"), "public_url": url},
            telegram={
                "base_url": telegram.base_url,
                "mode": "webhook",
                "webhook_url": f"{url}/webhooks/telegram",
                "webhook_secret": WEBHOOK_SECRET,
            },
            twilio={
                "whatsapp_from": SANDBOX_FROM,
                "api_base_url": twilio.base_url,
                "webhook_url": f"{url}/webhooks/whatsapp",
            },
        )
        ready = threading.Event()
        stop = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            rt = await build_runtime(bot_settings, parser=nlu_parser)
            app = create_app(bot_settings, runtime=rt)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
            task = asyncio.create_task(server.serve())
            try:
                while not server.started:
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.01)
                await start_runtime(rt)
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)
            finally:
                server.should_exit = True
                await task
                await close_runtime(rt)

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:  # surfaced to the test below
                failure.append(exc)
                ready.set()

        thread = threading.Thread(target=run, name="fuzz-server", daemon=True)
        thread.start()
        assert ready.wait(60), "fuzz server did not start"
        if failure:
            raise failure[0]
        yield FuzzServer(url, database)
        stop.set()
        thread.join(30)


def stored_rows(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in STORED_TABLES}


def settled_rows(database: Path) -> dict[str, int]:
    """The row counts once work an earlier, accepted request started in the background has finished."""
    rows = stored_rows(database)
    for _ in range(100):
        time.sleep(0.02)
        again = stored_rows(database)
        if again == rows:
            return rows
        rows = again
    return rows


FUZZED_PATHS = r"^/(api/chat|model/parse|webhooks/|api/staff/)"
HTTP_EXAMPLES = settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


def _operation_labels() -> list[str]:
    """Every fuzzed operation of the app's OpenAPI document (read without starting anything)."""
    document = create_app(load_settings(REPO / "config.yml", environ={})).openapi()
    schema = schemathesis.openapi.from_dict(document).include(path_regex=FUZZED_PATHS)
    return sorted(f"{r.ok().method.upper()} {r.ok().path}" for r in schema.get_all_operations())


OPERATIONS = _operation_labels()


def test_the_fuzzed_surface_is_the_one_the_brief_names() -> None:
    assert {
        "POST /api/chat",
        "POST /api/chat/photo",
        "GET /api/chat/{session_id}/events",
        "POST /model/parse",
        "POST /webhooks/telegram",
        "POST /webhooks/whatsapp",
        "POST /webhooks/whatsapp/status",
        "GET /api/staff/handoffs",
    } <= set(OPERATIONS), OPERATIONS


@pytest.fixture(scope="module")
def live_schema(fuzz_server: FuzzServer) -> dict[str, Any]:
    """The running server's OpenAPI operations by label."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json").include(path_regex=FUZZED_PATHS)
    return {f"{r.ok().method.upper()} {r.ok().path}": r.ok() for r in schema.get_all_operations()}


@pytest.mark.parametrize("label", OPERATIONS)
def test_the_http_surface_never_fails_and_rejections_store_nothing(
    label: str, fuzz_server: FuzzServer, live_schema: dict[str, Any]
) -> None:
    """Valid (positive) and invalid (negative) input for one operation, from the OpenAPI document."""
    operation = live_schema[label]
    calls = 0
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @HTTP_EXAMPLES
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            nonlocal calls
            headers = (
                {"Authorization": f"Bearer {STAFF_TOKEN}"} if case.path.startswith("/api/staff/") else {}
            )
            before = settled_rows(fuzz_server.database)
            response = case.call(base_url=fuzz_server.url, headers=headers, timeout=30)
            calls += 1
            result = (case.method, case.formatted_path, response.status_code, response.text[:300])
            assert response.status_code < 500, result
            if 400 <= response.status_code < 500:
                assert settled_rows(fuzz_server.database) == before, result

        try:
            check()
        except Unsatisfiable:
            # Nothing in the schema to violate (e.g. a webhook whose body is read raw).
            assert mode is GenerationMode.NEGATIVE, label
    assert calls > 0


async def test_a_nul_character_is_dropped_not_a_crash(runtime: Runtime) -> None:
    """PostgreSQL stores NUL in neither text nor JSONB; fuzzing found the turn failing on it."""
    msg = IncomingMessage(
        channel=Channel.WEBCHAT,
        chat_id="nul-1",
        user_id="nul-1",
        message_id="nul-m1",
        text="ha\x00lo",
        location=Location(-0.03, 109.33, address="Jl.\x00 Gajah Mada", label="\x00"),
        kind=ContentKind.TEXT,
    )
    result = await runtime.dispatcher.handle(msg)
    assert not result.failed and result.replies
    async with runtime.db.session() as session:
        stored = (await session.execute(select(Message).where(Message.direction == "in"))).scalar_one()
    assert stored.text == "halo"
