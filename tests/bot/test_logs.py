"""Log lines as text or JSON, with the fields bound to the work in hand (request id, channel, chat,
flow state)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import bind
from tests.conftest import LiveServer
from tests.factories import chat_body
from tests.support.logs import captured_logs

PHONE = "081256780003"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines into a buffer (its handler removed afterwards)."""
    with captured_logs("INFO", fmt="json") as stream:
        yield stream


def parsed(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_json_line_parses_and_carries_the_bound_fields(json_lines: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    with bind(channel="webchat", chat="…0003"):
        log.info("turn for %s", PHONE)
        try:
            raise ValueError("a\nmultiline\nproblem")
        except ValueError:
            log.exception("turn failed")
    log.warning("after the turn")

    first, second, third = parsed(json_lines)
    assert (first["level"], first["logger"], first["channel"], first["chat"]) == (
        "INFO",
        "bot.test",
        "webchat",
        "…0003",
    )
    assert PHONE not in first["message"]  # masked as in text logs
    assert "ValueError: a\nmultiline\nproblem" in second["exception"]
    assert "channel" not in third and third["message"] == "after the turn"


def test_text_lines_end_with_the_bound_fields() -> None:
    with captured_logs("INFO") as stream, bind(request_id="abc123"):
        logging.getLogger("bot.test").info("hello")

    assert stream.getvalue().rstrip().endswith("bot.test: hello [request_id=abc123]")


async def test_a_request_gets_an_id_in_its_answer_and_in_every_line_it_logs(
    live_server: LiveServer, json_lines: io.StringIO
) -> None:
    response = await live_server.client.post(
        "/api/chat", json=chat_body("halo", session_id="log-1"), headers={"X-Request-ID": "req-42"}
    )
    fresh = await live_server.client.get("/healthz", headers={"X-Request-ID": "not a token!"})

    assert response.headers["x-request-id"] == "req-42"
    assert fresh.headers["x-request-id"] != "not a token!" and len(fresh.headers["x-request-id"]) == 16
    turn = [line for line in parsed(json_lines) if line["message"].startswith("turn channel=webchat")]
    assert [(line["request_id"], line["channel"]) for line in turn] == [("req-42", "webchat")]
    assert turn[0]["chat"] != "log-1"  # masked


async def test_a_turn_logs_the_flow_state_it_arrived_in(
    live_server: LiveServer, json_lines: io.StringIO
) -> None:
    await live_server.client.post("/api/chat", json=chat_body("mau lapor", session_id="log-2"))
    await live_server.client.post("/api/chat", json=chat_body("lampu jalan", session_id="log-2"))

    turns = [line for line in parsed(json_lines) if line["message"].startswith("turn channel=webchat")]
    assert [line["flow_state"] for line in turns] == ["idle", "complaint.ask_category"]
