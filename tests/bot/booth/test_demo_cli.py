"""`pontibot demo`: booth mode on the LAN, the poster, reset — run as an operator would."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import zxingcpp
from PIL import Image
from sqlalchemy import select, update

from bot.booth.sessions import reset_idle_demo_sessions
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Conversation, Resident
from storage.types import utcnow
from tests.conftest import LiveServer
from tests.factories import chat_body
from tests.support import cli_env, pontibot, pontibot_serving


def env_for(db_path: Path, nlu_model_dir: Path, **extra: str) -> dict[str, str]:
    return cli_env(database_url=f"sqlite+aiosqlite:///{db_path}", nlu_model_dir=nlu_model_dir, **extra)


def test_poster_command_writes_a_poster_whose_codes_decode(tmp_path: Path, nlu_model_dir: Path) -> None:
    db_path = tmp_path / "p.db"
    upgrade(f"sqlite+aiosqlite:///{db_path}")
    env = env_for(db_path, nlu_model_dir, PONTIBOT_TWILIO__WHATSAPP_FROM="whatsapp:+14155238886")
    out = tmp_path / "poster.png"

    result = pontibot(
        "demo",
        "poster",
        "--out",
        str(out),
        "--url",
        "http://192.168.1.20:8080",
        "--bot-username",
        "PontiBot",
        env=env,
    )

    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        decoded = sorted(code.text for code in zxingcpp.read_barcodes(image))
    assert decoded == [
        "http://192.168.1.20:8080/?source=cfd",
        "https://t.me/PontiBot?start=cfd",
        "https://wa.me/14155238886?text=Halo",
    ]


async def test_booth_mode_serves_on_all_interfaces(
    tmp_path: Path, nlu_model_dir: Path, nlu_parser: object
) -> None:
    env = env_for(tmp_path / "booth.db", nlu_model_dir)
    async with (
        pontibot_serving("demo", "--url", "http://10.1.2.3:8080", env=env, log=tmp_path / "demo.log") as (
            server,
            health,
        ),
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        await client.post("/api/chat", json=chat_body("halo", session_id="any-phone"))
        stats = (await client.get("/booth/stats")).json()
        screen = (await client.get("/booth")).text
    output = server.output()

    assert health.status_code == 200
    assert stats["visitors"] == 1
    assert "http://10.1.2.3:8080/?source=cfd" in screen
    assert "Uvicorn running on http://0.0.0.0:" in output


async def test_idle_booth_conversations_start_afresh(live_server: LiveServer) -> None:
    for session_id in ("cfd-phone", "web-resident"):
        await live_server.client.post("/api/chat", json=chat_body("halo", session_id=session_id))
    db: Database = live_server.runtime.db
    async with db.session() as session:
        await session.execute(
            update(Conversation).values(state="somewhere.waiting", slots={"x": 1}, updated_at=utcnow())
        )

    early = await reset_idle_demo_sessions(db, idle_minutes=30, now=utcnow())
    later = await reset_idle_demo_sessions(db, idle_minutes=30, now=utcnow() + timedelta(minutes=31))

    async with db.session() as session:
        rows = (
            await session.execute(
                select(Resident.external_id, Conversation.state, Conversation.slots).join(
                    Resident, Resident.id == Conversation.resident_id
                )
            )
        ).all()
    assert (early, later) == (0, 1)
    assert sorted(rows) == [("cfd-phone", None, {}), ("web-resident", "somewhere.waiting", {"x": 1})]


def test_reset_clears_booth_sessions_and_demo_permits(tmp_path: Path, nlu_model_dir: Path) -> None:
    db_path = tmp_path / "r.db"
    upgrade(f"sqlite+aiosqlite:///{db_path}")
    env = env_for(db_path, nlu_model_dir)
    assert pontibot("demo", "advance", "PBG-2026-00124", env=env).returncode == 0

    result = pontibot("demo", "reset", env=env)
    listed = pontibot("demo", "permits", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert "demo permits back to their starting stage" in result.stdout
    import json

    stages = {p["number"]: p["stage"] for p in json.loads(listed.stdout)}
    assert stages["PBG-2026-00124"] == "diterima"
