"""The Rasa backend against a tiny Rasa-like HTTP server on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from nlu.errors import NluError, NluUnavailable
from nlu.pipeline import build_parser
from nlu.rasa_http import RasaHttpParser

RASA_ANSWER = {
    "text": "syarat bikin ktp",
    "intent": {"name": "document_requirements", "confidence": 0.91},
    "entities": [
        {
            "entity": "document_type",
            "start": 13,
            "end": 16,
            "confidence_entity": 0.97,
            "value": "ktp_el",
            "extractor": "DIETClassifier",
            "processors": ["EntitySynonymMapper"],
        }
    ],
    "intent_ranking": [
        {"name": "document_requirements", "confidence": 0.91},
        {"name": "service_fee", "confidence": 0.05},
    ],
    "response_selector": {},
}


class RasaLike(BaseHTTPRequestHandler):
    """Answers POST /model/parse like a Rasa 3 server; some texts trigger failures."""

    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        RasaLike.received.append({"path": self.path, **body})
        text = body["text"]
        if text == "boom":
            self._send(500, b'{"error": "model not loaded"}')
        elif text == "garbage":
            self._send(200, b"<html>not json</html>")
        elif text == "unsure":
            answer = {**RASA_ANSWER, "text": text, "intent": {"name": "greet", "confidence": 0.2}}
            answer["intent_ranking"] = [{"name": "greet", "confidence": 0.2}]
            self._send(200, json.dumps(answer).encode())
        else:
            self._send(200, json.dumps({**RASA_ANSWER, "text": text}).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def rasa_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RasaLike)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RasaLike.received = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_reads_rasa_json(rasa_url: str, tmp_path: Path) -> None:
    parser = build_parser("rasa", threshold=0.4, rasa_url=rasa_url + "/", model_dir=tmp_path)
    assert isinstance(parser, RasaHttpParser)
    try:
        result = await parser.parse("syarat bikin ktp")
    finally:
        await parser.aclose()
    assert RasaLike.received == [{"path": "/model/parse", "text": "syarat bikin ktp"}]
    assert (result.intent.name, result.intent.confidence) == ("document_requirements", 0.91)
    assert [(e.entity, e.value, e.start, e.end, e.confidence) for e in result.entities] == [
        ("document_type", "ktp_el", 13, 16, 0.97)
    ]
    assert [s.name for s in result.intent_ranking] == ["document_requirements", "service_fee"]


async def test_threshold_applies_to_rasa_too(rasa_url: str) -> None:
    parser = RasaHttpParser(rasa_url, threshold=0.4)
    try:
        result = await parser.parse("unsure")
    finally:
        await parser.aclose()
    assert result.intent.name == "nlu_fallback"


async def test_payload_is_not_sent_to_rasa(rasa_url: str) -> None:
    parser = RasaHttpParser(rasa_url, threshold=0.4)
    try:
        result = await parser.parse('/office_location{"office": "mpp"}')
    finally:
        await parser.aclose()
    assert RasaLike.received == []
    assert (result.intent.name, result.intent.confidence) == ("office_location", 1.0)
    assert [(e.entity, e.value, e.extractor) for e in result.entities] == [("office", "mpp", "payload")]


@pytest.mark.parametrize("text", ["boom", "garbage"])
async def test_server_errors_raise_nlu_unavailable(rasa_url: str, text: str) -> None:
    parser = RasaHttpParser(rasa_url, threshold=0.4)
    try:
        with pytest.raises(NluUnavailable):
            await parser.parse(text)
    finally:
        await parser.aclose()


async def test_unreachable_server_raises_nlu_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    parser = RasaHttpParser(f"http://127.0.0.1:{port}", threshold=0.4, timeout=1.0)
    try:
        with pytest.raises(NluError):
            await parser.parse("halo")
    finally:
        await parser.aclose()


async def test_the_language_is_detected_locally(rasa_url: str, tmp_path: Path) -> None:
    parser = build_parser("rasa", threshold=0.4, rasa_url=rasa_url, model_dir=tmp_path)
    try:
        english = await parser.parse("what documents do i need for a ktp")
        indonesian = await parser.parse("syarat bikin ktp apa aja kak")
        unclear = await parser.parse("unsure")
    finally:
        await parser.aclose()
    assert (english.language, indonesian.language, unclear.language) == ("en", "id", None)
    assert english.to_dict()["language"] == "en"
