"""Fuzzing: hypothesis over the message path, schemathesis over the OpenAPI document.

* Any message a channel can hand the dispatcher (any text, payload, location, kind) is answered
  or kept without a crash, and stored exactly once.
* Every operation of the HTTP surface residents, platforms and staff reach — /api/chat, its photo
  and events, /model/parse, /webhooks/*, /api/staff/* — is called with schema-driven and invalid
  input on a real server: never a 5xx, and a rejected request (4xx) stores nothing.
* Every page, form and query parameter of the staff console (and the booth's staff control), which the
  OpenAPI document does not describe, is called signed in as an admin with fuzzed values and the
  session's real or a fuzzed CSRF token: never a 5xx.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import func, select

from bot.app import create_app
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from bot.staff.auth import hash_password
from bot.wiring import build_runtime, close_runtime, start_runtime
from flows.messages import Channel, ContentKind, IncomingMessage, Location
from storage import staff_repository as staff_repo
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Message
from tests.conftest import REPO, build_settings
from tests.support import eventually, free_port, serve
from tests.support.fake_telegram import FakeTelegram
from tests.support.fake_twilio import SANDBOX_FROM, FakeTwilio

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
        bot_settings = build_settings(
            database_url=url_db,
            nlu_model_dir=tmp / "nlu",
            media_dir=tmp / "media",
            environ={
                "TELEGRAM_BOT_TOKEN": telegram.token,
                "TWILIO_ACCOUNT_SID": twilio.account_sid,
                "TWILIO_AUTH_TOKEN": twilio.auth_token,
                "PONTIBOT_STAFF__API_TOKEN": STAFF_TOKEN,
            },
            server={"public_url": url},
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

        async def serve_until_stopped() -> None:
            rt = await build_runtime(bot_settings, parser=nlu_parser)
            try:
                async with serve(create_app(bot_settings, runtime=rt), port=port, lifespan="auto"):
                    await start_runtime(rt)
                    ready.set()
                    await asyncio.to_thread(stop.wait)
            finally:
                await close_runtime(rt)

        def run() -> None:
            try:
                asyncio.run(serve_until_stopped())
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
    reads = [stored_rows(database)]

    def steady() -> bool:
        reads.append(stored_rows(database))
        return reads[-1] == reads[-2]

    asyncio.run(eventually(steady, timeout=2, interval=0.02, what="the stored rows stop changing"))
    return reads[-1]


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


# -- the staff console's forms and query parameters, signed in ------------------------------------
#
# The console's pages are not in the OpenAPI document, so their operations are read from the app's
# routes: every query, form and path parameter of every page and form under /staff and /booth (and
# the JSON API once more, with the session cookie and X-CSRF-Token instead of the bearer token), fuzzed
# as a signed-in admin with the session's real CSRF token (or a fuzzed one). Never a 5xx.

CONSOLE_ADMIN = "fuzz-admin"
CONSOLE_PASSWORD = "fuzz-admin-kata-sandi-2026"
CSRF = object()  # stands for the session's CSRF token (the login form's on the login route)
CONSOLE_PREFIXES = ("/staff", "/booth", "/api/staff")
# Ends the very session the fuzzing signs in with (its CSRF handling is in the cases above it).
NOT_FUZZED = {("POST", "/staff/logout")}
EDGE_VALUES = [
    "",
    "0",
    "-1",
    "1",
    "99999999999999999999",
    "1e3",
    "true",
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "2026-11-23",
    "ADU-2026-000001",
    "PBG-2026-00124",
    "open",
    "verified",
    "all",
    " sari\u00a0",
    "ＳＡＲＩ",
    "tökén",
    "\u202etxt.exe",
    "\u200b",
    "../../etc/passwd",
    "%00",
    "<script>alert(1)</script>",
    "x" * 5000,
]
fuzz_text = st.one_of(
    st.sampled_from(EDGE_VALUES), st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
)
header_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=80
)
CONSOLE_EXAMPLES = settings(
    max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


def _console_routes() -> dict[str, APIRoute]:
    """Every console page, form and API route (method and path), read from the app."""
    app = create_app(load_settings(REPO / "config.yml", environ={}))
    found: dict[str, APIRoute] = {}
    for entry in app.routes:
        router = getattr(entry, "original_router", None)
        for route in router.routes if router is not None else [entry]:
            if isinstance(route, APIRoute) and route.path.startswith(CONSOLE_PREFIXES):
                for method in sorted(route.methods):
                    if (method, route.path) not in NOT_FUZZED:
                        found[f"{method} {route.path}"] = route
    return found


CONSOLE_ROUTES = _console_routes()


def _params(dependant: Any, kind: str) -> list[Any]:
    """The parameters of one kind of a route and of every dependency it has."""
    found = list(getattr(dependant, kind))
    for sub in dependant.dependencies:
        found.extend(_params(sub, kind))
    return found


def _value(name: str, annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    """Values for one parameter: well-formed ones that reach the code behind it, and anything else."""
    if name == "csrf_token":
        return st.one_of(st.just(CSRF), fuzz_text)
    pattern = next((m.pattern for m in metadata if getattr(m, "pattern", None)), None)
    shape = str(annotation)
    if "int" in shape:
        valid: st.SearchStrategy[Any] = st.integers(-3, 60).map(str)
    elif "bool" in shape:
        valid = st.sampled_from(["true", "false", "1", "0"])
    elif pattern is not None:
        valid = st.from_regex(pattern, fullmatch=True)
    elif "date" in name:
        valid = st.one_of(st.sampled_from(["0001-01-01", "9999-12-31"]), st.dates().map(date.isoformat))
    else:
        valid = fuzz_text
    return st.one_of(valid, fuzz_text)


def _fields(fields: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of ``fields`` (any may be left out), each with a fuzzed value."""
    return st.fixed_dictionaries(
        {},
        optional={
            f.alias: _value(f.alias, f.field_info.annotation, list(f.field_info.metadata)) for f in fields
        },
    )


def _json_body(model: Any) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON body of ``model``'s fields with fuzzed values."""
    return st.fixed_dictionaries(
        {},
        optional={
            name: _value(name, f.annotation, list(f.metadata)) for name, f in model.model_fields.items()
        },
    )


def _forms_and_models(route: APIRoute) -> tuple[list[Any], list[Any]]:
    """The form fields of ``route`` and the models of its JSON body."""
    bodies = _params(route.dependant, "body_params")
    forms = [b for b in bodies if type(b.field_info).__name__ == "Form"]
    return forms, [b.field_info.annotation for b in bodies if b not in forms]


def _simplest(field: Any) -> str | None:
    """The simplest valid value of a parameter, or None to leave out an optional one."""
    info = field.field_info
    if not info.is_required():
        return None
    shape = str(info.annotation)
    pattern = next((m.pattern for m in info.metadata if getattr(m, "pattern", None)), None)
    if "int" in shape:
        return "1"
    if pattern is not None:
        simplest: str = find(
            st.from_regex(pattern, fullmatch=True), lambda _: True, settings=settings(database=None)
        )
        return simplest
    return "1"


# Tried first, one parameter at a time (the others valid): what once made a 5xx in the console.
HOSTILE = ["tökén", "0001-01-01", "9999-12-31"]


def _one_hostile_field(route: APIRoute) -> list[dict[str, Any]]:
    """Calls to ``route`` with one parameter (or the CSRF header) set to each :data:`HOSTILE` value."""
    forms, _ = _forms_and_models(route)
    places = {
        "path": _params(route.dependant, "path_params"),
        "query": _params(route.dependant, "query_params"),
        "form": forms,
    }
    valid: dict[str, dict[str, Any]] = {
        place: {f.alias: CSRF if f.alias == "csrf_token" else _simplest(f) for f in fields}
        for place, fields in places.items()
    }
    valid = {place: {k: v for k, v in values.items() if v is not None} for place, values in valid.items()}
    calls = []
    for value in HOSTILE:
        calls.append({**valid, "json": None, "csrf_header": value})
        for place, fields in places.items():
            for f in fields:
                if place == "path" and "int" in str(f.field_info.annotation):
                    continue
                calls.append(
                    {**valid, place: {**valid[place], f.alias: value}, "json": None, "csrf_header": CSRF}
                )
    return calls


def _console_request(route: APIRoute) -> st.SearchStrategy[dict[str, Any]]:
    """Path, query, form (or JSON body) and CSRF header of one call to ``route``."""
    dependant = route.dependant
    forms, models = _forms_and_models(route)
    return st.fixed_dictionaries(
        {
            "path": st.fixed_dictionaries(
                {
                    p.alias: _value(p.alias, p.field_info.annotation, [])
                    for p in _params(dependant, "path_params")
                }
            ),
            "query": _fields(_params(dependant, "query_params")),
            "form": _fields(forms),
            "json": _json_body(models[0]) if models else st.none(),
            "csrf_header": st.one_of(st.just(CSRF), header_text),
        }
    )


@dataclass
class ConsoleSession:
    """The fuzzing admin's signed-in session: its cookies and CSRF tokens."""

    cookie: str
    csrf: str
    login_csrf: str


@pytest.fixture(scope="module")
def console_session(fuzz_server: FuzzServer) -> ConsoleSession:
    """An admin account on the fuzz server, signed in through the login form."""

    async def add_admin() -> None:
        db = Database(f"sqlite+aiosqlite:///{fuzz_server.database}")
        try:
            async with db.session() as session:
                await staff_repo.create_staff_user(
                    session,
                    username=CONSOLE_ADMIN,
                    password_hash=hash_password(CONSOLE_PASSWORD),
                    role="admin",
                )
        finally:
            await db.dispose()

    asyncio.run(add_admin())
    with httpx.Client(base_url=fuzz_server.url, timeout=30) as browser:
        form = browser.get("/staff/login")
        login_csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        signed_in = browser.post(
            "/staff/login",
            data={"username": CONSOLE_ADMIN, "password": CONSOLE_PASSWORD, "csrf_token": login_csrf},
        )
        assert signed_in.status_code == 303, signed_in.text
        me = browser.get("/api/staff/me").json()
        token = browser.cookies["pontibot_staff"]
        login_token = browser.get("/staff/login").cookies["pontibot_staff_login"]
    return ConsoleSession(
        cookie=f"pontibot_staff={token}; pontibot_staff_login={login_token}",
        csrf=me["csrf_token"],
        login_csrf=login_token,
    )


def _filled(value: Any, csrf: str) -> Any:
    return csrf if value is CSRF else value


@pytest.mark.parametrize("label", sorted(CONSOLE_ROUTES))
def test_the_console_signed_in_never_fails(
    label: str, fuzz_server: FuzzServer, console_session: ConsoleSession
) -> None:
    """Fuzzed query, form, path and CSRF values on one console route, as a signed-in admin: never a 5xx."""
    method, path = label.split(" ", 1)
    route = CONSOLE_ROUTES[label]
    csrf = console_session.login_csrf if path == "/staff/login" else console_session.csrf
    answered: list[str] = []  # where each call was sent on ("" when it was not redirected)
    # Collected, not asserted inside hypothesis: every failing call is listed, with a short traceback.
    failures: list[tuple[Any, ...]] = []

    def call_once(call: dict[str, Any]) -> None:
        url = path
        for name, value in call["path"].items():
            url = url.replace("{" + name + "}", quote(str(value), safe="") or "0")
        headers = {"Cookie": console_session.cookie}
        if path.startswith("/api/"):
            header = _filled(call["csrf_header"], csrf)
            headers["X-CSRF-Token"] = header.encode() if isinstance(header, str) else header
        form = {k: _filled(v, csrf) for k, v in call["form"].items()}
        body = {k: _filled(v, csrf) for k, v in call["json"].items()} if call["json"] is not None else None
        response = client.request(
            method,
            url,
            params=call["query"],
            data=form or None,
            json=body if method != "GET" else None,
            headers=headers,
        )
        answered.append(response.headers.get("location", ""))
        if response.status_code >= 500:
            failures.append((method, url, call["query"], form, response.status_code, response.text[:200]))

    for hostile in _one_hostile_field(route):
        call_once = example(call=hostile)(call_once)
    with httpx.Client(base_url=fuzz_server.url, timeout=30) as client:
        CONSOLE_EXAMPLES(given(call=_console_request(route))(call_once))()
        still = client.get("/api/staff/me", headers={"Cookie": console_session.cookie})

    assert failures[:5] == [], f"{len(failures)} calls answered 5xx"
    assert still.status_code == 200, "the fuzzing session is still signed in"
    assert any(not where.startswith("/staff/login") for where in answered), "answered signed in"
