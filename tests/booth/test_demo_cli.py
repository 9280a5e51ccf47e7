"""`pontibot demo`: booth mode on the LAN, the poster, reset — run as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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
from tests.conftest import REPO, LiveServer, free_port
from tests.factories import chat_body


def env_for(db_path: Path, nlu_model_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PONTIBOT_", "TELEGRAM_", "TWILIO_"))}
    env.pop("DATABASE_URL", None)
    env |= {
        "PONTIBOT_DATABASE__URL": f"sqlite+aiosqlite:///{db_path}",
        "PONTIBOT_NLU__MODEL_DIR": str(nlu_model_dir),
    }
    return env | extra


def pontibot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )


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


def test_booth_mode_serves_on_all_interfaces(tmp_path: Path, nlu_model_dir: Path, nlu_parser: object) -> None:
    port = free_port()
    env = env_for(tmp_path / "booth.db", nlu_model_dir)
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--port", str(port), "--url", "http://10.1.2.3:8080"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        httpx.post(
            f"http://127.0.0.1:{port}/api/chat", json=chat_body("halo", session_id="any-phone"), timeout=10
        )
        stats = httpx.get(f"http://127.0.0.1:{port}/booth/stats", timeout=10).json()
        screen = httpx.get(f"http://127.0.0.1:{port}/booth", timeout=10).text
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]

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
