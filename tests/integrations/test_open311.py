"""The Open311 client and mapper against a fake GeoReport v2 server: wire format, errors, tokens, changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from integrations.base import (
    BackendRejected,
    BackendUnavailable,
    BadResponse,
    TicketNotAssigned,
)
from integrations.open311 import Open311ComplaintBackend, Open311Error
from tests import factories
from tests.integrations.harness import open311_backend
from tests.support.fake_open311 import API_KEY, FakeOpen311

POINT = (-0.0335, 109.3356)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpen311]:
    server = FakeOpen311(jurisdiction_id="pontianak.go.id").start()
    yield server
    server.stop()


@pytest.fixture
async def backend(fake: FakeOpen311) -> AsyncIterator[Open311ComplaintBackend]:
    backend = open311_backend(fake, media_url=lambda key: f"https://bot.pontianak.go.id/media/{key}")
    yield backend
    await backend.aclose()


report = partial(
    factories.report,
    category="street_light",
    description="Lampu jalan mati sejak tiga hari",
    local_ref="REF-TEST0001",
    lat=POINT[0],
    lon=POINT[1],
)


async def test_services_lists_the_servers_service_codes(backend: Open311ComplaintBackend) -> None:
    services = await backend.client.services()

    assert [s["service_code"] for s in services] == ["JLN-01", "PJU-02", "SMP-03", "DRN-04", "LN-99"]


async def test_create_posts_the_spec_form_fields(fake: FakeOpen311, backend: Open311ComplaintBackend) -> None:
    filed = await backend.create(report(media_keys=("ab/" + "0" * 64 + ".jpg",)))

    [post] = fake.requests_to("POST", "/requests.json")
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    assert post.form == {
        "api_key": API_KEY,
        "jurisdiction_id": "pontianak.go.id",
        "service_code": "PJU-02",
        "description": "Lampu jalan mati sejak tiga hari",
        "lat": "-0.0335000",
        "long": "109.3356000",
        "media_url": "https://bot.pontianak.go.id/media/ab/" + "0" * 64 + ".jpg",
    }
    assert (filed.ticket, filed.note) == ("1001", "Ditangani dalam 5 hari kerja")


async def test_a_typed_address_is_sent_as_address_string(
    fake: FakeOpen311, backend: Open311ComplaintBackend
) -> None:
    await backend.create(report(lat=None, lon=None, address="Jl. Tanjungpura depan Pasar Kapuas Indah"))

    [post] = fake.requests_to("POST", "/requests.json")
    assert (post.form["address_string"], "lat" in post.form) == (
        "Jl. Tanjungpura depan Pasar Kapuas Indah",
        False,
    )


async def test_a_category_without_a_code_uses_other(
    fake: FakeOpen311, backend: Open311ComplaintBackend
) -> None:
    await backend.create(report(category="illegal_parking"))

    assert fake.requests_to("POST", "/requests.json")[0].form["service_code"] == "LN-99"


async def test_the_spec_error_array_becomes_a_rejection_without_retries(fake: FakeOpen311) -> None:
    fake.api_key = "another-key"
    backend = open311_backend(fake)

    with pytest.raises(Open311Error, match="403 Invalid api_key received") as caught:
        await backend.create(report())
    await backend.aclose()

    assert (caught.value.errors, caught.value.status) == ((("403", "Invalid api_key received"),), 403)
    assert isinstance(caught.value, BackendRejected)
    assert len(fake.requests_to("POST", "/requests.json")) == 1


async def test_an_error_array_with_http_200_is_still_an_error(
    fake: FakeOpen311, backend: Open311ComplaintBackend
) -> None:
    fake.fail_next(
        200, '[{"code": 400, "description": "service_code missing"}]', content_type="application/json"
    )

    with pytest.raises(Open311Error, match="service_code missing"):
        await backend.create(report())


async def test_an_html_error_page_is_a_bad_response(
    fake: FakeOpen311, backend: Open311ComplaintBackend
) -> None:
    fake.fail_next(200, "<html><body>Sedang pemeliharaan</body></html>", content_type="text/html")

    with pytest.raises(BadResponse, match="HTML page"):
        await backend.get("1001")


async def test_an_answer_of_the_wrong_shape_is_a_bad_response(
    fake: FakeOpen311, backend: Open311ComplaintBackend
) -> None:
    fake.fail_next(201, '[{"hello": "world"}]', content_type="application/json")

    with pytest.raises(BadResponse, match="neither a service_request_id nor a token"):
        await backend.create(report())


async def test_a_server_that_keeps_failing_is_unavailable(
    fake: FakeOpen311, backend: Open311ComplaintBackend
) -> None:
    fake.fail_next(500, times=3)

    with pytest.raises(BackendUnavailable, match="failed 3 times"):
        await backend.create(report())


async def test_an_unknown_request_is_none(backend: Open311ComplaintBackend) -> None:
    assert await backend.get("424242") is None


async def test_a_batch_token_is_polled_until_the_server_assigns_an_id(fake: FakeOpen311) -> None:
    fake.batch, fake.token_delay_polls = True, 1
    backend = open311_backend(fake, token_attempts=3)

    filed = await backend.create(report())
    await backend.aclose()

    assert filed.ticket == "1001"
    assert [r.path for r in fake.server.received] == [
        "/open311/v2/requests.json",
        "/open311/v2/tokens/tok-1001.json",
        "/open311/v2/tokens/tok-1001.json",
    ]


async def test_a_token_not_resolved_in_time_is_left_for_later(fake: FakeOpen311) -> None:
    fake.batch, fake.token_delay_polls = True, 5
    backend = open311_backend(fake, token_attempts=2)

    with pytest.raises(TicketNotAssigned) as caught:
        await backend.create(report())
    pending = await backend.resolve_token(caught.value.token)
    fake.token_delay_polls = 0
    resolved = await backend.resolve_token(caught.value.token)
    await backend.aclose()

    assert (caught.value.token, pending, resolved and resolved.ticket) == ("tok-1001", None, "1001")


async def test_statuses_map_onto_our_lifecycle(fake: FakeOpen311, backend: Open311ComplaintBackend) -> None:
    filed = await backend.create(report())
    fake.set_status(filed.ticket, "closed", "Lampu sudah diganti")

    found = await backend.get(filed.ticket)

    assert found is not None
    assert (found.status.value, found.note, found.category, found.agency) == (
        "resolved",
        "Lampu sudah diganti",
        "street_light",
        "Pemerintah Kota Pontianak",
    )
    assert [Open311ComplaintBackend.status(w).value for w in ("open", "in_progress", "weird")] == [
        "open",
        "in_progress",
        "open",
    ]


async def test_changes_include_older_requests_updated_after_the_cursor(
    fake: FakeOpen311, backend: Open311ComplaintBackend
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = fake.add_request(
        service_code="JLN-01", lat=POINT[0], lon=POINT[1], requested=now - timedelta(days=20)
    )
    untouched = fake.add_request(
        service_code="JLN-01", lat=POINT[0], lon=POINT[1], requested=now - timedelta(days=10)
    )
    cursor = (now - timedelta(days=1)).isoformat()
    fake.set_status(old, "in_progress", "Dikerjakan Dinas PUPR", at=now)

    changes = await backend.changes_since(cursor)

    [query] = fake.requests_to("GET", "/requests.json")
    assert query.query["start_date"].startswith((now - timedelta(days=91)).date().isoformat())
    assert [(c.ticket, c.status.value) for c in changes.items] == [(old, "in_progress")]
    assert untouched not in [c.ticket for c in changes.items]
    assert changes.cursor == now.isoformat()


async def test_nearby_filters_the_servers_open_requests_by_distance(
    fake: FakeOpen311, backend: Open311ComplaintBackend
) -> None:
    close = fake.add_request(service_code="PJU-02", lat=-0.0340, lon=109.3356)
    fake.add_request(service_code="PJU-02", lat=-0.0500, lon=109.3356)  # 1.8 km away
    closed = fake.add_request(service_code="PJU-02", lat=-0.0336, lon=109.3356, status="closed")

    found = await backend.nearby(category="street_light", lat=POINT[0], lon=POINT[1], radius_m=200)

    [query] = fake.requests_to("GET", "/requests.json")
    assert (query.query["status"], query.query["service_code"]) == ("open", "PJU-02")
    assert [c.ticket for c in found] == [close]
    assert closed not in [c.ticket for c in found]
