"""Staff fixtures: settings with an API token, a fixed WIB clock, accounts, signed-in console clients,
and residents chatting over the web chat HTTP API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.runtime import Runtime
from bot.staff.auth import hash_password
from flows.texts import Texts
from storage import staff_repository as staff_repo
from tests.bot.channels.conftest import serve_telegram_bot  # noqa: F401  (staff group tests)
from tests.conftest import LiveServer

WIB = ZoneInfo("Asia/Pontianak")
TEXTS = Texts.load()
API_TOKEN = "test-staff-token-0123456789abcdef"
PASSWORD = "rahasia-kota-123"
# Monday 23 November 2026, 10:00 WIB: inside the default staff hours (Mon-Fri 07:30-16:00).
MONDAY_MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=WIB)
SATURDAY_EVENING = datetime(2026, 11, 21, 20, 0, tzinfo=WIB)
HOURS_ID = "Senin–Jumat 07.30–16.00"


class Clock:
    """A settable clock for the dispatcher and the console (aware datetimes)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The test settings with a staff API token."""
    return {"environ": {"PONTIBOT_STAFF__API_TOKEN": API_TOKEN}}


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    """Monday morning in WIB, for the bot and the console alike."""
    fixed = Clock(MONDAY_MORNING)
    runtime.dispatcher.clock = fixed
    return fixed


async def add_staff(runtime: Runtime, username: str, role: str = "agent", name: str | None = None) -> None:
    """Create a console account with :data:`PASSWORD`."""
    async with runtime.db.session() as session:
        await staff_repo.create_staff_user(
            session, username=username, password_hash=hash_password(PASSWORD), role=role, display_name=name
        )


def hidden(html: str, name: str) -> str:
    """The value of a hidden form field in a page."""
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no field {name}"
    return match.group(1)


@dataclass
class Console:
    """A browser-like client of the console (cookies kept), signed in or not."""

    client: httpx.AsyncClient

    async def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        page = await self.client.get("/staff/login")
        return await self.client.post(
            "/staff/login",
            data={"username": username, "password": password, "csrf_token": hidden(page.text, "csrf_token")},
        )

    async def csrf(self, path: str = "/staff") -> str:
        page = await self.client.get(path)
        assert page.status_code == 200, page.text
        return hidden(page.text, "csrf_token")

    async def post_form(self, path: str, data: dict[str, str], *, page: str = "/staff") -> httpx.Response:
        return await self.client.post(path, data={**data, "csrf_token": await self.csrf(page)})


@pytest.fixture
async def console(live_server: LiveServer) -> AsyncIterator[Callable[[], Awaitable[Console]]]:
    """A factory of separate console clients (each with its own cookies) on the live server."""
    clients: list[httpx.AsyncClient] = []

    async def make() -> Console:
        client = httpx.AsyncClient(base_url=live_server.url, timeout=30, follow_redirects=False)
        clients.append(client)
        return Console(client)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def api(live_server: LiveServer) -> httpx.AsyncClient:
    """The live server's client, with the staff API token."""
    live_server.client.headers["Authorization"] = f"Bearer {API_TOKEN}"
    return live_server.client


class Resident:
    """A resident in the web chat: each call is one message; returns the bot's replies (maybe none)."""

    def __init__(self, server: LiveServer, session_id: str) -> None:
        self.server = server
        self.session_id = session_id
        self.seen = 0

    async def send(self, **body: Any) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30) as client:
            response = await client.post("/api/chat", json={"session_id": self.session_id, **body})
        assert response.status_code == 200, response.text
        replies: list[dict[str, Any]] = response.json()["replies"]
        return replies

    async def say(self, text: str) -> list[dict[str, Any]]:
        return await self.send(text=text)

    async def press(self, payload: str, title: str = "") -> list[dict[str, Any]]:
        return await self.send(payload=payload, text=title or None)

    async def new_events(self) -> list[dict[str, Any]]:
        """What the web chat page's poll would show now (and remember it as seen)."""
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30) as client:
            response = await client.get(f"/api/chat/{self.session_id}/events", params={"after": self.seen})
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        if events:
            self.seen = events[-1]["id"]
        return events


@pytest.fixture
def resident(live_server: LiveServer) -> Callable[[str], Resident]:
    """A factory of web chat residents."""
    return lambda session_id="warga-1": Resident(live_server, session_id)


def texts_of(replies: list[dict[str, Any]]) -> list[str]:
    """The texts of replies or events, in order."""
    return [r["text"] for r in replies]


# --- complaints, outbox -------------------------------------------------------------------------


async def resident_id_of_session(runtime: Runtime, session_id: str) -> int:
    """The resident id behind a web chat session (after its first message)."""
    from sqlalchemy import select

    from storage.models import Resident as ResidentRow

    async with runtime.db.session() as session:
        found = (
            await session.execute(
                select(ResidentRow.id).where(
                    ResidentRow.channel == "webchat", ResidentRow.external_id == session_id
                )
            )
        ).scalar_one()
        return int(found)


async def file_complaint(
    runtime: Runtime,
    *,
    resident_id: int | None,
    category: str = "road_damage",
    description: str = "Jalan berlubang besar di depan sekolah, sudah dua motor jatuh.",
    kelurahan_code: str | None = "61.71.01.1002",
    address: str | None = "Jl. Tanjungpura depan SD 14",
    lat: float | None = -0.0305,
    lon: float | None = 109.3425,
    media: tuple[bytes, ...] = (),
    subscribe: bool = True,
) -> Any:
    """A local complaint as the complaint flow files it (stored, ticketed, the reporter subscribed)."""
    from integrations.base import ComplaintReport, new_local_ref, reporter_ref
    from storage import repositories as repo

    keys = tuple(runtime.media.save(data).key for data in media)
    backend = runtime.backends.local_complaints
    assert backend is not None
    complaint = await backend.create(
        ComplaintReport(
            category=category,
            description=description,
            reporter=reporter_ref(resident_id) if resident_id is not None else "anonymous",
            local_ref=new_local_ref(),
            lat=lat,
            lon=lon,
            address=address,
            kelurahan_code=kelurahan_code,
            media_keys=keys,
        )
    )
    if subscribe and resident_id is not None:
        async with runtime.db.session() as session:
            await repo.subscribe(
                session, resident_id=resident_id, topic="complaint", ref=complaint.ticket, last_status="open"
            )
    return complaint


@pytest.fixture
def complaint_clock(runtime: Runtime, clock: Clock) -> Clock:
    """The fixed clock for the local complaint back end too (due dates, overdue)."""
    backend = runtime.backends.local_complaints
    assert backend is not None
    backend._clock = clock
    return clock


@pytest.fixture
async def outbox(runtime: Runtime, clock: Clock) -> AsyncIterator[Any]:
    """An outbox dispatcher on the runtime's channels (driven by the test: ``await outbox.deliver_due()``)."""
    from bot.notifications.outbox import OutboxDispatcher

    dispatcher = OutboxDispatcher(
        db=runtime.db, channels=runtime.channels, settings=runtime.settings.notifications, clock=clock
    )
    yield dispatcher
    await dispatcher.stop(grace=1)
