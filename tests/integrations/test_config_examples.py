"""Every example config under docs/config-examples loads and builds its back ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import load_settings
from bot.wiring.backends import build_backends
from integrations.http_permits import HttpPermitBackend
from integrations.open311 import Open311ComplaintBackend
from storage.db import Database
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "docs" / "config-examples").glob("*.yml"))


def test_there_is_one_example_per_remote_back_end() -> None:
    assert [p.name for p in EXAMPLES] == ["open311.yml", "permits-http.yml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
async def test_an_example_builds_its_back_end(path: Path, tmp_path: Path) -> None:
    settings = load_settings(
        path,
        environ={"PONTIBOT_COMPLAINTS__OPEN311__API_KEY": "k", "PONTIBOT_PERMITS__HTTP__AUTH_VALUE": "k"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path}/x.db"},
    )
    db = Database(settings.database_url)
    backends = build_backends(settings, db)
    try:
        if path.name == "open311.yml":
            assert isinstance(backends.complaint_backend, Open311ComplaintBackend)
            assert backends.complaint_backend.service_code_for("clean_water") == "AIR-06"
            assert backends.complaint_backend.client.api_key == "k"  # from the environment only
        else:
            assert isinstance(backends.permits, HttpPermitBackend)
            assert backends.permits.mapper.stage("SURVEI").value == "survei_lapangan"
            assert backends.permits.config.auth_value == "k"
    finally:
        await backends.aclose()
        await db.dispose()
