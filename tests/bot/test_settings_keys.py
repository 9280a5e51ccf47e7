"""Unknown settings stop the program, naming the key and the closest valid one (config.yml and env)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.settings import ConfigError, load_settings
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"PONTIBOT_LOGGNG__FORMAT": "json"}, "PONTIBOT_LOGGNG__FORMAT: no such setting ('loggng'"),
        ({"PONTIBOT_LOGGNG__FORMAT": "json"}, "did you mean PONTIBOT_LOGGING__…?"),
        ({"PONTIBOT_METRICS__PORT": "9100"}, "PONTIBOT_METRICS__PORT: no such setting"),
        ({"PONTIBOT_SERVR__PORT": "9000"}, "did you mean PONTIBOT_SERVER__…?"),
        ({"PONTIBOT_LOGLEVEL": "DEBUG"}, "did you mean PONTIBOT_LOG_LEVEL?"),
        ({"PONTIBOT_SERVER__PROT": "9000"}, "server.prot: no such setting"),
    ],
)
def test_an_unknown_variable_stops_the_program_naming_it(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(REPO / "config.yml", environ=environ)

    assert expected in str(caught.value)


def test_a_mistyped_key_in_the_file_names_the_closest_valid_one(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    data["server"]["prot"] = 9000
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})

    assert "server.prot: no such setting" in str(caught.value)
    assert "did you mean server.port?" in str(caught.value)


def test_the_test_suite_and_benchmark_variables_are_not_settings() -> None:
    environ = {"PONTIBOT_TEST_DATABASE_URL": "sqlite+aiosqlite:///x.db", "PONTIBOT_BENCH_PG": "1"}

    assert load_settings(REPO / "config.yml", environ=environ).server.port == 8080


def test_the_log_format_is_a_setting() -> None:
    settings = load_settings(REPO / "config.yml", environ={"PONTIBOT_LOGGING__FORMAT": "json"})

    assert settings.logging.format == "json"
