"""Settings: config.yml, environment overrides, secrets from the environment only, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings(REPO / "config.yml", environ={})

    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.database_url == "sqlite+aiosqlite:///var/pontibot.db"
    assert settings.telegram_enabled is False
    assert settings.whatsapp_enabled is False
    assert settings.notifications.quiet_window() is not None


def test_environment_overrides_any_key() -> None:
    settings = load_settings(
        REPO / "config.yml",
        environ={
            "PONTIBOT_SERVER__PORT": "9000",
            "PONTIBOT_NLU__THRESHOLD": "0.35",
            "PONTIBOT_COMPLAINTS__OPEN311__JURISDICTION_ID": "pontianak.go.id",
        },
    )

    assert settings.server.port == 9000
    assert settings.nlu.threshold == 0.35
    assert settings.complaints.open311.jurisdiction_id == "pontianak.go.id"


def test_pontibot_config_selects_another_file(tmp_path: Path) -> None:
    other = tmp_path / "other.yml"
    other.write_text("server:\n  port: 8181\n")

    assert load_settings(environ={"PONTIBOT_CONFIG": str(other)}).server.port == 8181
    assert load_settings(other, environ={}).server.port == 8181


def test_secrets_come_from_the_environment() -> None:
    settings = load_settings(
        REPO / "config.yml",
        environ={
            "DATABASE_URL": "postgresql+asyncpg://pontibot@db/pontibot",
            "TELEGRAM_BOT_TOKEN": "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345678",
        },
    )

    assert settings.database_url == "postgresql+asyncpg://pontibot@db/pontibot"
    assert settings.telegram_enabled is True
    assert "ABCdef" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"PONTIBOT_SERVER__PORT": "abc"}, ["server.port", "PONTIBOT_SERVER__PORT", "integer"]),
        ({"PONTIBOT_SERVER__PORT": "70000"}, ["server.port", "65535"]),
        ({"PONTIBOT_NLU__BACKEND": "bert"}, ["nlu.backend", "'embedded' or 'rasa'"]),
        ({"PONTIBOT_NOTIFICATIONS__QUIET_HOURS": "9pm"}, ["notifications.quiet_hours", "HH:MM-HH:MM"]),
        ({"PONTIBOT_DATABASE__URL": "mysql://x"}, ["database.url", "postgresql+asyncpg"]),
        ({"PONTIBOT_PERMITS__NUMBER_PATTERN": "([A-Z"}, ["permits.number_pattern", "regular expression"]),
        ({"PONTIBOT_SERVER__COLOUR": "red"}, ["server.colour", "Extra inputs"]),
        ({"TELEGRAM_BOT_TOKEN": "changethis"}, ["TELEGRAM_BOT_TOKEN", "placeholder"]),
    ],
)
def test_an_invalid_value_names_the_key_and_what_is_expected(
    environ: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(REPO / "config.yml", environ=environ)

    for name in names:
        assert name in str(caught.value)


def test_secrets_in_the_file_and_missing_files_are_refused(tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.yml"
    leaky.write_text("secrets:\n  telegram_bot_token: x\n")

    with pytest.raises(ConfigError, match="environment"):
        load_settings(leaky, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yml", environ={})
    with pytest.raises(ConfigError, match="mapping"):
        (tmp_path / "list.yml").write_text("- 1\n")
        load_settings(tmp_path / "list.yml", environ={})
