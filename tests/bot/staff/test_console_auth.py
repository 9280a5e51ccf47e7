"""Staff console security: sign-in, sessions, CSRF, login throttling, roles, bearer token, audit log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from bot.app import create_app
from bot.privacy import mask_text
from bot.runtime import Runtime
from storage.staff_models import AuditEntry, StaffSession
from tests.bot.staff.conftest import API_TOKEN, Clock, Console, Resident, add_staff
from tests.conftest import LiveServer

ConsoleFactory = Callable[[], Awaitable[Console]]


def staff_routes(runtime: Runtime) -> list[tuple[str, str]]:
    """Every (method, path) of the console pages and the staff API."""
    app = create_app(runtime.settings, runtime=runtime)
    found: list[tuple[str, str]] = []
    for entry in app.routes:
        router = getattr(entry, "original_router", None)
        for route in router.routes if router is not None else [entry]:
            if isinstance(route, APIRoute) and route.path.startswith(("/staff", "/api/staff")):
                found.extend((method, route.path) for method in sorted(route.methods))
    return found


async def audit_trail(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.db.session() as session:
        return list(
            (await session.execute(select(AuditEntry.who, AuditEntry.what).order_by(AuditEntry.id))).all()
        )


async def open_handoff(resident: Callable[[str], Resident], session_id: str = "warga-9") -> None:
    await resident(session_id).say("mau bicara dengan petugas")


async def test_every_staff_route_without_session_redirects_to_login_or_answers_401(
    live_server: LiveServer, runtime: Runtime
) -> None:
    routes = staff_routes(runtime)
    public = {("GET", "/staff/login"), ("POST", "/staff/login")}
    outcomes = {}
    async with httpx.AsyncClient(base_url=live_server.url, follow_redirects=False) as anonymous:
        for method, path in routes:
            if (method, path) in public:
                continue
            url = path.replace("{handoff_id}", "1")
            response = await anonymous.request(method, url, headers={"Authorization": "Bearer wrong-token"})
            outcomes[(method, path)] = (response.status_code, response.headers.get("location", ""))

    assert len(routes) >= 20
    for (method, path), (status, location) in outcomes.items():
        if path.startswith("/api/"):
            assert status == 401, (method, path)
        else:
            assert (status, location.split("?")[0]) == (303, "/staff/login"), (method, path)


async def test_login_sets_a_hardened_session_cookie_and_logout_ends_it(
    console: ConsoleFactory, runtime: Runtime, clock: Clock
) -> None:
    await add_staff(runtime, "sari", "agent", "Sari")
    browser = await console()

    signed_in = await browser.login("sari")
    queue = await browser.client.get("/staff")
    token_cookie = browser.client.cookies["pontibot_staff"]
    logged_out = await browser.post_form("/staff/logout", {})
    after = await browser.client.get("/staff")

    cookie_header = signed_in.headers["set-cookie"].lower()
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/staff")
    assert "httponly" in cookie_header and "samesite=lax" in cookie_header and "secure" not in cookie_header
    assert queue.status_code == 200 and "Antrean percakapan" in queue.text
    assert logged_out.status_code == 303
    assert after.status_code == 303
    async with runtime.db.session() as session:
        stored = (await session.execute(select(StaffSession.token_hash))).scalars().all()
    assert token_cookie not in stored, "only the hash of the token is kept"
    assert stored == []
    assert await audit_trail(runtime) == [("sari", "login"), ("sari", "logout")]


async def test_cookies_are_secure_when_served_over_https(runtime: Runtime, clock: Clock) -> None:
    settings = runtime.settings.model_copy(
        update={
            "server": runtime.settings.server.model_copy(update={"public_url": "https://bot.pontianak.go.id"})
        }
    )
    await add_staff(runtime, "sari")
    runtime.settings = settings
    app = create_app(settings, runtime=runtime)
    app.state.runtime = runtime
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as client:
        page = await client.get("/staff/login")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        response = await client.post(
            "/staff/login", data={"username": "sari", "password": "rahasia-kota-123", "csrf_token": csrf}
        )

    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


async def test_forms_without_the_csrf_token_are_refused(
    console: ConsoleFactory, runtime: Runtime, resident: Callable[[str], Resident], clock: Clock
) -> None:
    await add_staff(runtime, "sari")
    await open_handoff(resident)
    browser = await console()
    await browser.login("sari")

    forged = await browser.client.post(
        "/staff/handoffs/1/reply", data={"text": "halo", "csrf_token": "forged"}
    )
    missing = await browser.client.post("/staff/handoffs/1/close", data={"note": "x"})
    api_without_header = await browser.client.post("/api/staff/handoffs/1/take")
    me = (await browser.client.get("/api/staff/me")).json()
    api_with_header = await browser.client.post(
        "/api/staff/handoffs/1/take", headers={"X-CSRF-Token": me["csrf_token"]}
    )
    login_without_token = await (await console()).client.post(
        "/staff/login", data={"username": "sari", "password": "rahasia-kota-123"}
    )

    assert (forged.status_code, missing.status_code, api_without_header.status_code) == (403, 403, 403)
    assert api_with_header.status_code == 200
    assert login_without_token.status_code == 403


async def test_five_wrong_passwords_lock_the_account_for_this_address_for_15_minutes(
    console: ConsoleFactory, runtime: Runtime, clock: Clock
) -> None:
    await add_staff(runtime, "sari")
    browser = await console()

    failures = [(await browser.login("sari", "salah-terus")).status_code for _ in range(5)]
    while_locked = await browser.login("sari")
    clock.advance(minutes=14)
    still_locked = await browser.login("sari")
    clock.advance(minutes=2)
    after_lock = await browser.login("sari")

    assert failures == [401, 401, 401, 401, 429]
    assert while_locked.status_code == 429 and "Terlalu banyak percobaan" in while_locked.text
    assert still_locked.status_code == 429
    assert after_lock.status_code == 303
    assert [what for _, what in await audit_trail(runtime)] == [
        "login.failed",
        "login.failed",
        "login.failed",
        "login.failed",
        "login.locked",
        "login.blocked",
        "login.blocked",
        "login",
    ]


async def test_unknown_users_fail_like_wrong_passwords(
    console: ConsoleFactory, runtime: Runtime, clock: Clock
) -> None:
    browser = await console()

    response = await browser.login("tidak-ada")

    assert response.status_code == 401
    assert "Nama pengguna atau kata sandi salah." in response.text


async def test_agents_work_handoffs_admins_also_assign_and_read_the_audit_log(
    console: ConsoleFactory, runtime: Runtime, resident: Callable[[str], Resident], clock: Clock
) -> None:
    await add_staff(runtime, "sari", "agent")
    await add_staff(runtime, "budi", "agent")
    await add_staff(runtime, "admin", "admin")
    await open_handoff(resident)
    sari, budi, admin = await console(), await console(), await console()
    for browser, name in ((sari, "sari"), (budi, "budi"), (admin, "admin")):
        await browser.login(name)

    agent_audit = await sari.client.get("/staff/audit")
    agent_assign = await sari.post_form("/staff/handoffs/1/assign", {"username": "budi"})
    taken = await sari.post_form("/staff/handoffs/1/take", {})
    taken_by_other = await budi.post_form("/staff/handoffs/1/take", {}, page="/staff/handoffs/1")
    reply_by_other = await budi.post_form(
        "/staff/handoffs/1/reply", {"text": "halo"}, page="/staff/handoffs/1"
    )
    assigned = await admin.post_form("/staff/handoffs/1/assign", {"username": "budi"})
    admin_audit = await admin.client.get("/staff/audit")

    assert (agent_audit.status_code, agent_assign.status_code) == (403, 403)
    assert taken.status_code == 303
    assert taken_by_other.status_code == 303 and taken_by_other.headers["location"].endswith(
        "/staff/handoffs/1"
    )
    flash = (await budi.client.get("/staff/handoffs/1")).text
    assert "sudah ditangani petugas lain" in flash or "ditangani petugas lain" in flash
    assert reply_by_other.status_code == 303
    assert assigned.status_code == 303
    assert admin_audit.status_code == 200
    trail = [entry for entry in await audit_trail(runtime) if not entry[1].startswith("login")]
    assert trail == [("sari", "handoff.take"), ("admin", "handoff.assign")]


async def test_full_personal_data_only_for_the_assigned_agent_or_admin_and_audit_logged(
    console: ConsoleFactory, runtime: Runtime, resident: Callable[[str], Resident], clock: Clock
) -> None:
    await add_staff(runtime, "sari")
    await add_staff(runtime, "budi")
    warga = resident("warga-nik")
    await warga.say("mau bicara dengan petugas")
    await warga.say("NIK saya 6171010101900001, hp 081234567890")
    sari, budi = await console(), await console()
    await sari.login("sari")
    await budi.login("budi")
    await sari.post_form("/staff/handoffs/1/take", {})

    masked = await sari.client.get("/staff/handoffs/1")
    refused = await budi.client.get("/staff/handoffs/1?reveal=1")
    revealed = await sari.client.get("/staff/handoffs/1?reveal=1")
    queue = await budi.client.get("/staff")

    assert "6171010101900001" not in masked.text and mask_text("6171010101900001") in masked.text
    assert "081234567890" not in queue.text
    assert refused.status_code == 303
    assert (
        revealed.status_code == 200
        and "6171010101900001" in revealed.text
        and "081234567890" in revealed.text
    )
    assert ("sari", "handoff.reveal") in await audit_trail(runtime)


@pytest.mark.parametrize("header", ["Bearer nope", f"Basic {API_TOKEN}", "Bearer"])
async def test_the_api_refuses_wrong_tokens(live_server: LiveServer, header: str) -> None:
    response = await live_server.client.get("/api/staff/handoffs", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_the_api_is_in_the_openapi_document_with_bearer_auth(live_server: LiveServer) -> None:
    document = (await live_server.client.get("/openapi.json")).json()

    assert {"/api/staff/handoffs", "/api/staff/handoffs/{handoff_id}/reply", "/api/staff/dashboard"} <= set(
        document["paths"]
    )
    assert document["components"]["securitySchemes"]["StaffApiToken"]["scheme"] == "bearer"
    assert not any(path.startswith("/staff") for path in document["paths"])


async def test_the_dashboard_counts_messages_fallbacks_handoffs_and_ratings(
    api: httpx.AsyncClient,
    resident: Callable[[str], Resident],
    clock: Clock,
    console: ConsoleFactory,
    runtime: Runtime,
) -> None:
    warga = resident("warga-dash")
    await warga.say("???")
    await warga.say("mau bicara dengan petugas")
    await api.post("/api/staff/handoffs/1/close", json={"note": ""})
    await warga.press('/rate{"score": 4}')
    await add_staff(runtime, "sari")
    browser = await console()
    await browser.login("sari")

    board = (await api.get("/api/staff/dashboard")).json()
    page = await browser.client.get("/staff/dashboard")

    assert board["messages_total"] == 3
    assert [day["count"] for day in board["messages_per_day"] if day["count"]] == [3]
    assert len(board["messages_per_day"]) == 14 and board["messages_per_day"][-1]["date"] == "2026-11-23"
    assert board["fallback_rate"] == pytest.approx(1 / 3)
    assert (board["open_handoffs"], board["satisfaction"], board["ratings"]["4"]) == (0, 4.0, 1)
    assert page.status_code == 200 and page.text.count("<svg") == 3
    assert "cdn" not in page.text.lower()


# --- issue 16: one spelling of a user name, CSRF tokens of any text, idle sessions -------------


async def test_a_locked_account_stays_locked_under_any_spelling_of_its_name(
    console: ConsoleFactory, runtime: Runtime, clock: Clock
) -> None:
    await add_staff(runtime, "sari")
    browser = await console()
    for _ in range(5):
        await browser.login("sari", "salah-terus")

    spellings = [" sari", "sari\t", "  sari  ", "sari\u00a0", "SARI", "\u3000Ｓａｒｉ"]
    outcomes = [(await browser.login(name)).status_code for name in spellings]

    assert outcomes == [429] * len(spellings)
    blocked = [who for who, what in await audit_trail(runtime) if what == "login.blocked"]
    assert blocked == ["sari"] * len(spellings)


async def test_a_user_name_of_only_spaces_is_refused_with_the_form_error(
    console: ConsoleFactory, runtime: Runtime, clock: Clock
) -> None:
    browser = await console()

    response = await browser.login(" \t\u00a0\u2003")

    assert response.status_code == 422
    assert "Isi nama pengguna." in response.text
    assert await audit_trail(runtime) == []


async def test_a_csrf_token_that_is_not_ascii_is_refused_not_a_crash(
    console: ConsoleFactory, runtime: Runtime, clock: Clock
) -> None:
    await add_staff(runtime, "sari")
    browser = await console()
    await browser.login("sari")

    form = await browser.client.post("/staff/handoffs/1/take", data={"csrf_token": "tökén"})
    header = await browser.client.post(
        "/api/staff/handoffs/1/take", headers={"X-CSRF-Token": "tökén".encode()}
    )

    assert (form.status_code, header.status_code) == (403, 403)


async def test_an_idle_session_is_signed_out_and_an_active_one_is_not(
    console: ConsoleFactory, runtime: Runtime, clock: Clock, live_server: LiveServer
) -> None:
    await add_staff(runtime, "sari")
    active, idle = await console(), await console()
    await active.login("sari")
    await idle.login("sari")

    clock.advance(minutes=20)
    kept_1 = (await active.client.get("/staff")).status_code
    clock.advance(minutes=20)
    kept_2 = (await active.client.get("/staff")).status_code
    signed_out = await idle.client.get("/staff/complaints")
    login_page = await idle.client.get(signed_out.headers["location"])
    api_after = await idle.client.get("/api/staff/me")
    clock.advance(minutes=31)
    api_idle = await active.client.get("/api/staff/me")
    bearer = await live_server.client.get("/api/staff/me", headers={"Authorization": f"Bearer {API_TOKEN}"})

    assert (kept_1, kept_2) == (200, 200)
    assert (signed_out.status_code, signed_out.headers["location"]) == (
        303,
        "/staff/login?next=/staff/complaints",
    )
    assert login_page.status_code == 200
    assert "Sesi Anda berakhir karena tidak ada aktivitas selama 30 menit" in login_page.text
    assert (api_after.status_code, api_idle.status_code, bearer.status_code) == (401, 401, 200)
    async with runtime.db.session() as session:
        left = (await session.execute(select(StaffSession.token_hash))).scalars().all()
    assert left == [], "idle sessions are deleted"


async def test_the_idle_timeout_is_configurable(runtime: Runtime) -> None:
    assert runtime.settings.staff.idle_minutes == 30
