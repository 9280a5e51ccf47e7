"""The ``pontibot`` command as a resident or operator uses it: subprocesses, real stdin and HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from flows.texts import Texts
from tests.conftest import REPO, free_port

TEXTS = Texts.load()


def pontibot(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
        check=False,
    )


def base_env(tmp_path: Path, nlu_model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PONTIBOT_", "TELEGRAM_", "TWILIO_"))}
    env.pop("DATABASE_URL", None)
    env["PONTIBOT_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    env["PONTIBOT_NLU__MODEL_DIR"] = str(nlu_model_dir)
    return env


def test_db_upgrade_then_chat_in_the_terminal(
    tmp_path: Path, nlu_model_dir: Path, nlu_parser: object
) -> None:
    env = base_env(tmp_path, nlu_model_dir)

    upgraded = pontibot("db", "upgrade", env=env)
    chat = pontibot("chat", "--user", "warga-1", env=env, stdin="halo\n6\nbatal\n")

    assert upgraded.returncode == 0, upgraded.stderr
    assert chat.returncode == 0, chat.stderr
    assert TEXTS.render("id", "menu.intro") in chat.stdout
    assert "Balas 1, 2, 3, 4, 5 atau 6." in chat.stdout
    # "6" asks for a person (a handoff); "batal" ends it at the resident's request.
    assert TEXTS.render("id", "handoff.ended_by_resident") in chat.stdout


def test_chat_refuses_an_unmigrated_database(tmp_path: Path, nlu_model_dir: Path) -> None:
    chat = pontibot("chat", env=base_env(tmp_path, nlu_model_dir), stdin="halo\n")

    assert chat.returncode != 0
    assert "pontibot db upgrade" in chat.stderr


def test_an_invalid_setting_stops_the_program_naming_the_key(tmp_path: Path, nlu_model_dir: Path) -> None:
    env = base_env(tmp_path, nlu_model_dir) | {"PONTIBOT_SERVER__PORT": "delapan"}

    result = pontibot("run", env=env)

    assert result.returncode == 2
    assert "server.port" in result.stderr and "PONTIBOT_SERVER__PORT" in result.stderr


def test_run_serves_health_and_answers_halo(tmp_path: Path, nlu_model_dir: Path, nlu_parser: object) -> None:
    env = base_env(tmp_path, nlu_model_dir)
    assert pontibot("db", "upgrade", env=env).returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        answer = httpx.post(f"{url}/api/chat", json={"session_id": "x", "text": "halo"}, timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert health.json() == {"status": "ok", "database": "up"}
    [reply] = answer.json()["replies"]
    assert reply["text"].split("\n\n")[0] in TEXTS.variants("id", "greet")
    assert len(reply["buttons"]) == 6
