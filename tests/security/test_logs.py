"""Personal data and secrets never reach a log line in clear: lokal-id masking on the root handler.

The production handler (``bot.logs.configure_logging``) is installed on a captured stream; records of
every logger that matters — ours, uvicorn, alembic, apscheduler, SQLAlchemy, httpx, telegram — go
through it. The acceptance test runs a whole web chat conversation with a NIK and a phone number,
with SQLAlchemy logging every statement *and its parameters* (the worst case: the message text is
a parameter), and finds neither value in clear.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging, secret_values
from bot.privacy import MaskingFilter, mask_text
from bot.settings import load_settings
from tests.conftest import REPO, LiveServer
from tests.support.logs import captured_logs, remove_log_handlers

NIK = "6171015508900003"
PHONE = "081234567890"
PHONE_INTL = "+62 812-3456-7890"
EMAIL = "budi.santoso@gmail.com"
TOKEN = "123456789:AAFakeTokenForPontibotTests_0123456789"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The production log handler writing into a string, removed afterwards."""
    with captured_logs("DEBUG") as stream:
        yield stream


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"NIK saya {NIK}", "NIK saya 6171********0003"),
        (f"hp {PHONE} ya", "hp 0812****7890 ya"),
        (f"wa {PHONE_INTL}", "wa 0812****7890"),
        ("chat whatsapp:+6281234567890", "chat whatsapp:0812****7890"),
        (f"email {EMAIL}", "email b***@gmail.com"),
        ("salah ketik NIK 1234567890123456", "salah ketik NIK 1234********3456"),
        (f"GET https://api.telegram.org/bot{TOKEN}/getMe", "GET https://api.telegram.org/bot<secret>/getMe"),
        ("https://AC0123:authtok3n@api.twilio.com/2010-04-01", "https://<secret>@api.twilio.com/2010-04-01"),
        ("Authorization: Basic QUMxMjM6dG9rZW4=", "Authorization: Basic <secret>"),
        (
            "ticket ADU-2026-000123 izin PBG-2026-00123 chat …7890",
            "ticket ADU-2026-000123 izin PBG-2026-00123 chat …7890",
        ),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.parametrize(
    "name",
    [
        "bot.conversation.dispatcher",
        "uvicorn.error",
        "uvicorn.access",
        "alembic.runtime.migration",
        "apscheduler.scheduler",
    ],
)
def test_every_logger_goes_through_the_masking_handler(captured: io.StringIO, name: str) -> None:
    logging.getLogger(name).warning("pesan dari %s: NIK %s hp %s", "warga", NIK, PHONE)
    output = captured.getvalue()
    assert f"{name}: pesan dari warga: NIK 6171********0003 hp 0812****7890" in output
    assert NIK not in output and PHONE not in output


def test_handlers_libraries_attached_themselves_get_the_filter_too() -> None:
    own = logging.getLogger("uvicorn.error.pontibot-test")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    own.addHandler(handler)
    own.propagate = False
    try:
        configure_logging("INFO", stream=io.StringIO())
        own.error("NIK %s", NIK)
    finally:
        own.removeHandler(handler)
        remove_log_handlers()
    assert stream.getvalue() == "NIK 6171********0003\n"


def test_exceptions_and_stack_are_masked(captured: io.StringIO) -> None:
    try:
        raise ValueError(f"bad NIK {NIK} for {EMAIL}")
    except ValueError:
        logging.getLogger("bot.test").exception("turn failed for %s", PHONE, stack_info=True)
    output = captured.getvalue()
    assert "ValueError: bad NIK 6171********0003 for b***@gmail.com" in output
    assert NIK not in output and PHONE not in output and EMAIL not in output


def test_configured_secret_values_are_replaced_wherever_they_appear() -> None:
    settings = load_settings(
        REPO / "config.yml",
        environ={
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "twilio-auth-token-value",
            "PONTIBOT_STAFF__API_TOKEN": "staff-api-token-value",
            "DATABASE_URL": "postgresql+asyncpg://pontibot:db-password-value@db/pontibot",
            "PONTIBOT_TELEGRAM__WEBHOOK_SECRET": "webhook-secret-value",
        },
    )
    masking = MaskingFilter(secrets=secret_values(settings))
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "%s %s %s %s %s",
        (
            TOKEN,
            "twilio-auth-token-value",
            "staff-api-token-value",
            "db-password-value",
            "webhook-secret-value",
        ),
        None,
    )
    masking.filter(record)
    assert record.getMessage() == "<secret> <secret> <secret> <secret> <secret>"


async def test_a_whole_conversation_with_nik_and_phone_leaves_neither_in_the_log(
    live_server: LiveServer, captured: io.StringIO
) -> None:
    """Acceptance: SQLAlchemy logs every statement with its parameters, yet no NIK/phone in clear."""
    engine_logger = logging.getLogger("sqlalchemy.engine")
    engine_logger.setLevel(logging.INFO)
    try:
        session = {"session_id": "warga-log-1"}
        for text in (
            "halo",
            "KTP saya hilang, mau bikin baru",
            f"NIK saya {NIK}",
            f"nomor hp saya {PHONE}, email {EMAIL}",
            "data saya",
            "makasih",
        ):
            response = await live_server.client.post("/api/chat", json={**session, "text": text})
            assert response.status_code == 200, response.text
    finally:
        engine_logger.setLevel(logging.NOTSET)
    output = captured.getvalue()
    assert "INSERT INTO messages" in output  # the statements and their parameters were logged …
    assert "6171********0003" in output and "0812****7890" in output  # … masked
    assert NIK not in output
    assert PHONE not in output and "81234567890" not in output
    assert EMAIL not in output
