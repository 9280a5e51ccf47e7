"""`pontibot doctor`: one line per check with what to do, a named failure for each broken dependency."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.commands.doctor import Check, preflight, run_checks
from bot.settings import Settings
from tests.support import free_port
from tests.support.cli import cli_env, pontibot
from tests.support.fake_telegram import FakeTelegram
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

SENDER = "whatsapp:+14155238886"


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


async def test_a_healthy_installation_passes_every_check(
    make_settings: Callable[..., Settings], telegram: FakeTelegram, twilio: FakeTwilio, nlu_parser: object
) -> None:
    settings = make_settings(
        environ={
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        },
        telegram={"base_url": telegram.base_url},
        twilio={"api_base_url": twilio.base_url, "whatsapp_from": SENDER},
    )

    checks = by_name(await run_checks(settings))

    assert {name: check.ok for name, check in checks.items()} == {
        "config": True,
        "media": True,
        "nlu model": True,
        "database": True,
        "telegram": True,
        "whatsapp": True,
        "permits": True,
        "complaints": True,
    }
    assert checks["telegram"].line() == "✓ telegram: @pontibot_test_bot (polling)"


async def test_an_unreachable_telegram_and_a_wrong_twilio_credential_are_named(
    make_settings: Callable[..., Settings], twilio: FakeTwilio
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        environ={
            "TELEGRAM_BOT_TOKEN": "123456789:AAnotARealTokenButWellFormed_012345678",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": "wrong-auth-token-0123456789",
        },
        telegram={"base_url": nowhere},
        twilio={"api_base_url": twilio.base_url, "whatsapp_from": SENDER},
    )

    checks = by_name(await run_checks(settings))

    assert not checks["telegram"].ok
    assert checks["telegram"].line().startswith(f"✗ telegram: cannot reach {nowhere}")
    assert "123456789:AA" not in checks["telegram"].line()  # never the token
    assert not checks["whatsapp"].ok
    assert "refused TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN" in checks["whatsapp"].line()


async def test_a_refused_token_and_a_stale_schema_say_what_to_do(
    make_settings: Callable[..., Settings], telegram: FakeTelegram, tmp_path: Path
) -> None:
    settings = make_settings(
        environ={"TELEGRAM_BOT_TOKEN": "987654321:AAsomeoneElsesTokenNotKnownHere_0123"},
        telegram={"base_url": telegram.base_url},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}"},
    )

    checks = by_name(await run_checks(settings))

    assert checks["telegram"].line().endswith("get a valid TELEGRAM_BOT_TOKEN from @BotFather")
    assert checks["database"].line() == (
        "✗ database: reachable, schema out of date — run `pontibot db upgrade`"
    )


def test_run_refuses_a_media_directory_it_cannot_write(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("x")

    [failed] = preflight(make_settings(server={"media_dir": str(blocked / "media")}))

    assert failed.name == "media" and not failed.ok


def test_chat_on_a_never_migrated_database_says_what_to_do(tmp_path: Path) -> None:
    env = cli_env(database_url=f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")

    done = pontibot("chat", env=env, stdin="halo\n")

    assert done.returncode == 2
    assert "pontibot db upgrade" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
