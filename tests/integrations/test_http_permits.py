"""The configurable HTTP permit client against a fake licensing system with its own vocabulary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.settings import ConfigError, load_settings
from integrations.base import BackendRejected, BackendUnavailable, BadResponse, PermitStage
from integrations.http_permits import HttpPermitBackend
from tests.conftest import REPO
from tests.integrations.harness import fast_client
from tests.support.fake_permits import FakePermitSystem, config_for


@pytest.fixture
async def system() -> AsyncIterator[FakePermitSystem]:
    fake = FakePermitSystem().start()
    fake.add("PBG-2026-00500", "PBG", "SURVEI", note="Survei hari Kamis")
    fake.add("REK-2026-00042", "REKLAME", "TOLAK", note="Titik reklame di kawasan larangan")
    yield fake
    fake.stop()


def backend_for(system: FakePermitSystem, **changes: object) -> HttpPermitBackend:
    config = replace(config_for(system), **changes)  # type: ignore[arg-type]
    headers = {config.auth_header: config.auth_value} if config.auth_value else {}
    return HttpPermitBackend(config, client=fast_client("http-permits", config.base_url, headers=headers))


async def test_their_record_maps_onto_our_permit(system: FakePermitSystem) -> None:
    backend = backend_for(system)

    permit = await backend.get("REK-2026-00042")
    await backend.aclose()

    assert permit is not None
    assert (permit.number, permit.permit_type, permit.stage, permit.note, permit.office) == (
        "REK-2026-00042",
        "izin_reklame",
        PermitStage.REJECTED,
        "Titik reklame di kawasan larangan",
        "MPP Kota Pontianak",
    )
    assert permit.updated_at == datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 10:00 WIB
    [request] = system.server.received
    assert (request.path, request.headers["x-api-key"]) == (
        "/api/v1/permohonan/REK-2026-00042",
        "perizinan-test-key",
    )


async def test_a_wrong_key_is_a_rejection_naming_the_reason(system: FakePermitSystem) -> None:
    backend = backend_for(system, auth_value="salah")

    with pytest.raises(BackendRejected, match=r"HTTP 401.*kunci API tidak valid"):
        await backend.get("PBG-2026-00500")
    await backend.aclose()


async def test_a_status_outside_the_vocabulary_says_where_to_map_it(system: FakePermitSystem) -> None:
    system.records["PBG-2026-00500"]["status_terakhir"] = "DITANGGUHKAN"
    backend = backend_for(system)

    with pytest.raises(
        BadResponse, match=r"unknown permit status 'DITANGGUHKAN'; map it in permits.http.statuses"
    ):
        await backend.get("PBG-2026-00500")
    await backend.aclose()


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error", "message"),
    [
        (
            200,
            '{"error": "database perizinan sedang sibuk"}',
            "application/json",
            BackendRejected,
            "sedang sibuk",
        ),
        (
            200,
            '{"data": {"nomor_permohonan": "X"}}',
            "application/json",
            BadResponse,
            "no 'data.status_terakhir'",
        ),
        (200, "<html><h1>502 Bad Gateway</h1></html>", "text/html", BadResponse, "HTML page"),
        (200, "OK", "text/plain", BadResponse, "invalid JSON"),
        (503, "", "text/plain", BackendUnavailable, "failed 3 times"),
    ],
)
async def test_broken_answers_become_clear_errors(
    system: FakePermitSystem, status: int, body: str, content_type: str, error: type[Exception], message: str
) -> None:
    system.server.fail_next(status, body, content_type=content_type, times=3)
    backend = backend_for(system)

    with pytest.raises(error, match=message):
        await backend.get("PBG-2026-00500")
    await backend.aclose()


async def test_changes_follow_their_cursor(system: FakePermitSystem) -> None:
    backend = backend_for(system)
    start = await backend.changes_since(None)
    system.advance("PBG-2026-00500")
    system.advance("PBG-2026-00500", "SETUJU", note="Disetujui")

    changed = await backend.changes_since(start.cursor)
    await backend.aclose()

    assert (start.cursor, changed.cursor) == ("0", "2")
    assert [(p.number, p.stage, p.note) for p in changed.items] == [
        ("PBG-2026-00500", PermitStage.APPROVED, "Disetujui")
    ]
    assert system.server.received[-1].query == {"sejak": "0"}


def test_settings_refuse_a_status_mapping_to_a_stage_we_do_not_have() -> None:
    with pytest.raises(ConfigError, match=r"permits\.http\.statuses"):
        load_settings(REPO / "config.yml", environ={}, permits={"http": {"statuses": {"BARU": "new"}}})
