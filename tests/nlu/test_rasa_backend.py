"""The bot on a real Rasa 3.6 server (``nlu.backend: rasa``): web chat turns end to end, and Rasa going down.

Opt-in: marked ``rasa``, which pyproject's ``-m "not rasa"`` deselects from ``make test`` and CI;
``make test-rasa`` runs it. It needs the venv of ``scripts/rasa_venv.sh`` (``make rasa-venv``) and is
skipped, saying so, without it. DIET is trained once on nlu/data/nlu/ with bench/rasa/config.yml (about
ten minutes on two cores) and cached in that venv's directory, keyed by the data and the config.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.settings import Settings
from bot.wiring import build_runtime, close_runtime
from flows.knowledge import load_documents
from flows.texts import Texts
from nlu.training_data import TRAIN_DIR, data_hash, yaml_files
from storage.models import Message
from tests.conftest import REPO, LiveServer, free_port
from tests.support.waiting import eventually

RASA_VERSION = "3.6.21"
RASA_VENV = Path(os.environ.get("RASA_VENV") or Path.home() / ".cache" / "pontibot" / f"rasa-{RASA_VERSION}")
RASA = RASA_VENV / "bin" / "rasa"
CONFIG = REPO / "bench" / "rasa" / "config.yml"
RASA_ENV = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}

TEXTS = Texts.load()
DOCS = load_documents().documents
KTP, KK = DOCS["ktp_el"], DOCS["kk"]

pytestmark = [pytest.mark.rasa, pytest.mark.timeout(1800)]  # the first run trains DIET


@dataclass
class RasaServer:
    """``rasa run --enable-api`` on 127.0.0.1, started by this test."""

    url: str
    process: subprocess.Popen[bytes]

    async def stop(self) -> None:
        """Terminate the server and wait until it has exited."""
        if self.process.poll() is None:
            self.process.terminate()
        await eventually(lambda: self.process.poll() is not None, timeout=60, what="rasa run exited")


@pytest.fixture(scope="module")
def rasa_model() -> Path:
    """DIET trained on nlu/data/nlu/, cached under the Rasa venv (retrained when data or config change)."""
    if not RASA.exists():
        pytest.skip(f"no Rasa venv at {RASA_VENV}: run `make rasa-venv` (or set RASA_VENV to it)")
    models = RASA_VENV / "pontibot-models"
    name = "nlu-" + data_hash([*yaml_files(TRAIN_DIR), CONFIG], salt=RASA_VERSION)[:16]
    model = models / f"{name}.tar.gz"
    if not model.exists():
        models.mkdir(parents=True, exist_ok=True)
        command = [RASA, "train", "nlu", "--config", CONFIG, "--nlu", TRAIN_DIR, "--out", models]
        done = subprocess.run(
            [*map(str, command), "--fixed-model-name", name],
            cwd=models,
            env=RASA_ENV,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return model


@pytest.fixture
async def rasa_server(rasa_model: Path, tmp_path: Path) -> AsyncIterator[RasaServer]:
    """A Rasa server with the cached model, answering ``POST /model/parse`` (it loads for about a minute)."""
    port = free_port()
    log = tmp_path / "rasa-run.log"
    command = [RASA, "run", "--enable-api", "--model", rasa_model, "--interface", "127.0.0.1", "--port", port]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(part) for part in command], cwd=tmp_path, env=RASA_ENV, stdout=sink, stderr=subprocess.STDOUT
        )
    server = RasaServer(f"http://127.0.0.1:{port}", process)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

            async def parses() -> bool:
                assert process.poll() is None, f"rasa run exited: {log.read_text()[-4000:]}"
                try:
                    return (await client.post("/model/parse", json={"text": "halo"})).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(parses, timeout=300, interval=0.5, what="the Rasa server parses")
        yield server
    finally:
        await server.stop()


@pytest.fixture
def settings_overrides(rasa_server: RasaServer) -> dict[str, Any]:
    """The bot understands through the Rasa server."""
    return {"nlu": {"backend": "rasa", "rasa_url": rasa_server.url}}


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime with the parser its settings choose (the Rasa backend), not the embedded one."""
    rt = await build_runtime(settings)
    yield rt
    await close_runtime(rt)


async def send(server: LiveServer, session_id: str, **body: Any) -> str:
    """One web chat message (``text=`` or ``payload=``); the text of the bot's replies."""
    response = await server.client.post("/api/chat", json={"session_id": session_id, **body})
    assert response.status_code == 200, response.text
    replies = response.json()["replies"]
    assert replies, "the bot must always answer"
    return "\n".join(reply["text"] for reply in replies)


async def test_a_conversation_understood_by_the_rasa_server(
    live_server: LiveServer, rasa_server: RasaServer
) -> None:
    said = ["halo", "syarat bikin ktp apa aja", "berapa lama kk jadi"]

    greeting, menu = (await send(live_server, "rasa-1", text=said[0])).split("\n\n")
    assert greeting in TEXTS.variants("id", "greet")
    assert menu == TEXTS.render("id", "menu.intro")

    ktp = await send(live_server, "rasa-1", text=said[1])
    assert ktp.startswith(TEXTS.render("id", "documents.requirements_title", name=KTP.name.id))
    assert KTP.requirements["id"][0] in ktp

    kk = await send(live_server, "rasa-1", text=said[2])
    assert kk.startswith(TEXTS.render("id", "documents.time_title", name=KK.name.id))
    assert KK.processing_time.id in kk

    async with httpx.AsyncClient(base_url=rasa_server.url) as rasa:
        answers = [(await rasa.post("/model/parse", json={"text": text})).json() for text in said]
    async with live_server.runtime.db.session() as session:
        stored = (
            await session.execute(select(Message).where(Message.direction == "in").order_by(Message.id))
        ).scalars()
        understood = [(m.text, m.intent, m.confidence, m.data.get("entities", [])) for m in stored]
    assert understood == [
        (
            text,
            answer["intent"]["name"],
            answer["intent"]["confidence"],
            [{"entity": e["entity"], "value": e["value"]} for e in answer["entities"]],
        )
        for text, answer in zip(said, answers, strict=True)
    ]
    assert [a["intent"]["name"] for a in answers] == ["greet", "document_requirements", "processing_time"]


async def test_when_the_rasa_server_goes_down_the_resident_is_asked_to_try_again(
    live_server: LiveServer, rasa_server: RasaServer
) -> None:
    greeting = (await send(live_server, "rasa-2", text="halo")).split("\n\n")[0]
    assert greeting in TEXTS.variants("id", "greet")

    await rasa_server.stop()

    down = await send(live_server, "rasa-2", text="syarat bikin ktp apa aja")
    assert down == TEXTS.render("id", "error.generic")

    # A button carries its intent and entities: it is answered without the Rasa server.
    pressed = await send(live_server, "rasa-2", payload='/document_requirements{"document_type": "kk"}')
    assert pressed.startswith(TEXTS.render("id", "documents.requirements_title", name=KK.name.id))
