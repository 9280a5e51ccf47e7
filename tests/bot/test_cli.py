"""The ``pontibot`` command as a resident or operator uses it: subprocesses, real stdin and HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx

from flows.texts import Texts
from tests.support import cli_env, pontibot, pontibot_serving

TEXTS = Texts.load()


def base_env(tmp_path: Path, nlu_model_dir: Path) -> dict[str, str]:
    return cli_env(database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db", nlu_model_dir=nlu_model_dir)


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


async def test_run_serves_health_and_answers_halo(
    tmp_path: Path, nlu_model_dir: Path, nlu_parser: object
) -> None:
    env = base_env(tmp_path, nlu_model_dir)
    assert pontibot("db", "upgrade", env=env).returncode == 0
    async with (
        pontibot_serving("run", env=env, log=tmp_path / "run.log") as (server, health),
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        answer = await client.post("/api/chat", json={"session_id": "x", "text": "halo"})

    assert health.json() == {"status": "ok", "database": "up"}
    [reply] = answer.json()["replies"]
    assert reply["text"].split("\n\n")[0] in TEXTS.variants("id", "greet")
    assert len(reply["buttons"]) == 6
