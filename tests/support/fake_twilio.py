"""A fake Twilio REST server: real HTTP on 127.0.0.1, in a thread, recording every call.

Speaks what pontibot uses of Twilio's Programmable Messaging API (2010-04-01):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with form parameters To, From, Body,
  ContentSid, ContentVariables, StatusCallback, MediaUrl (repeatable); HTTP basic auth
  (AccountSid : AuthToken) checked; answers 201 with Twilio's message JSON (``sid`` SM…, ``status``
  queued) or Twilio's error JSON ``{code, message, more_info, status}``.
- ``GET /2010-04-01/Accounts/{AccountSid}.json``: the account (``status`` active) with the right basic
  auth, Twilio's 401 (code 20003) with a wrong one.
- Media of inbound messages: ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{MM…}/Media/{ME…}``
  needs basic auth and redirects (307) to a CDN path that needs none, as Twilio does.
- Faults: :meth:`FakeTwilio.fail_next` answers any error (429 / 20429 by default);
  :meth:`FakeTwilio.close_window` refuses free-form messages to a chat with 63016, like WhatsApp
  outside the 24-hour window.
- Twilio's side of the webhooks: :meth:`FakeTwilio.sign` (the real ``RequestValidator`` algorithm),
  :func:`post_signed` and :meth:`FakeTwilio.send_status` (a signed status callback to the URL a
  message was sent with, delivered through a given origin, as through a reverse proxy).

Usable from async tests, sync code and benchmarks::

    with FakeTwilio() as fake:
        twilio_settings = {"api_base_url": fake.base_url}   # TWILIO_ACCOUNT_SID / _AUTH_TOKEN: fake's
        fake.fail_next(status=429, code=20429)              # the next create is refused once
        await fake.wait_sent(2)                             # the accepted SentMessages so far
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from tests.support.waiting import eventually

ACCOUNT_SID = "AC5e1f0c7a3b2d4e6f8091a2b3c4d5e6f7"
AUTH_TOKEN = "f4k3-tw1l10-auth-t0ken-for-tests"
SANDBOX_FROM = "whatsapp:+14155238886"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "twilio"
MAX_BODY = 1600
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
_ADDRESS = re.compile(r"^whatsapp:\+[0-9]{6,20}$")
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32})/Messages\.json$")
_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32})\.json$")
_MEDIA_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32})/Messages/MM[0-9a-f]{32}/Media/ME[0-9a-f]{32}$"
)
ERROR_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    21609: "Invalid StatusCallback",
    21617: "The concatenated message body exceeds the 1600 character limit",
    21619: "A text message body or media urls must be specified",
    21656: "The ContentVariables Parameter is invalid",
    21910: "Invalid From and To pair. From and To should be of the same channel",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template."
    ),
}


@dataclass(frozen=True)
class SentMessage:
    """One message-create request the fake received, with what it answered."""

    sid: str | None
    status: int
    params: tuple[tuple[str, str], ...]
    error_code: int | None = None
    at: float = 0.0

    def get(self, name: str) -> str | None:
        """The first value of a form parameter."""
        return next((v for k, v in self.params if k == name), None)

    @property
    def to(self) -> str | None:
        """To."""
        return self.get("To")

    @property
    def body(self) -> str | None:
        """Body (None for a template message)."""
        return self.get("Body")

    @property
    def content_sid(self) -> str | None:
        """ContentSid."""
        return self.get("ContentSid")

    @property
    def content_variables(self) -> dict[str, str] | None:
        """ContentVariables, decoded."""
        raw = self.get("ContentVariables")
        return json.loads(raw) if raw is not None else None

    @property
    def status_callback(self) -> str | None:
        """StatusCallback."""
        return self.get("StatusCallback")


@dataclass(frozen=True)
class MediaRequest:
    """One GET of a media URL: the path, whether basic auth was right, the status answered."""

    path: str
    authorized: bool
    had_auth_header: bool
    status: int


@dataclass
class _Fault:
    status: int
    code: int
    to: str | None
    times: int


@dataclass
class _State:
    attempts: list[SentMessage] = field(default_factory=list)
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    cdn: dict[str, str] = field(default_factory=dict)
    media_requests: list[MediaRequest] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    closed_windows: set[str] = field(default_factory=set)


class FakeTwilio:
    """Twilio's REST API for one account, on 127.0.0.1, in a background thread."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.validator = RequestValidator(auth_token)
        self._state = _State()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        """Listen on a free port of 127.0.0.1."""
        fake = self

        class Handler(_Handler):
            twilio = fake

        # Two listeners: the API, and the media CDN on another port (another origin, as at Twilio).
        for name in ("fake-twilio", "fake-twilio-cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop listening."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What ``twilio.api_base_url`` should be."""
        return self._url(0)

    @property
    def cdn_url(self) -> str:
        """Where media downloads are redirected to (no auth there)."""
        return self._url(1)

    def _url(self, index: int) -> str:
        assert self._servers, "start() the fake first"
        host, port = self._servers[index].server_address[:2]
        return f"http://{host!s}:{port}"

    # --- set-up and faults -----------------------------------------------------------------

    def add_media(self, data: bytes, content_type: str) -> str:
        """Store a file a resident sent; returns its MediaUrl (basic auth needed, redirects to the CDN)."""
        path = (
            f"/2010-04-01/Accounts/{self.account_sid}/Messages/MM{secrets.token_hex(16)}"
            f"/Media/ME{secrets.token_hex(16)}"
        )
        with self._lock:
            self._state.media[path] = (content_type, data)
        return self.base_url + path

    def fail_next(
        self, *, status: int = 429, code: int = 20429, times: int = 1, to: str | None = None
    ) -> None:
        """Refuse the next ``times`` message creates (to ``to`` only, when given) with Twilio's error JSON."""
        with self._lock:
            self._state.faults.append(_Fault(status, code, to, times))

    def close_window(self, to: str) -> None:
        """Refuse free-form messages to ``to`` with 63016, as WhatsApp outside the 24-hour window."""
        with self._lock:
            self._state.closed_windows.add(to)

    # --- what happened ---------------------------------------------------------------------

    @property
    def attempts(self) -> list[SentMessage]:
        """Every message-create request, accepted or refused, in order."""
        with self._lock:
            return list(self._state.attempts)

    def sent(self, to: str | None = None) -> list[SentMessage]:
        """The accepted messages (to ``to`` only, when given), in order."""
        return [m for m in self.attempts if m.sid is not None and (to is None or m.to == to)]

    @property
    def media_requests(self) -> list[MediaRequest]:
        """Every GET of a media or CDN URL."""
        with self._lock:
            return list(self._state.media_requests)

    async def wait_sent(
        self, count: int = 1, *, to: str | None = None, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Wait until at least ``count`` messages were accepted; returns them."""
        await eventually(lambda: len(self.sent(to)) >= count, timeout, what=f"{count} sent messages")
        return self.sent(to)

    # --- Twilio calling us -----------------------------------------------------------------

    def sign(self, url: str, params: list[tuple[str, str]] | dict[str, str]) -> str:
        """``X-Twilio-Signature`` for a form POST to ``url`` (Twilio's HMAC-SHA1 algorithm)."""
        return str(self.validator.compute_signature(url, _multi(params)))

    async def send_status(
        self,
        sid: str,
        status: str,
        *,
        via: str,
        error_code: int | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """POST a signed status callback for message ``sid`` to its StatusCallback URL.

        The request is signed for the URL the message named (the public one) and delivered to the same
        path on ``via`` (the app's real address), as a reverse proxy would.
        """
        message = next((m for m in self.attempts if m.sid == sid), None)
        assert message is not None and message.status_callback, f"{sid} was not sent with a StatusCallback"
        params = [
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("ChannelToAddress", (message.to or "").removeprefix("whatsapp:")),
            ("To", message.to or ""),
            ("ChannelPrefix", "whatsapp"),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("StructuredMessage", "false"),
            ("From", message.get("From") or ""),
            ("ApiVersion", "2010-04-01"),
            ("ChannelInstallSid", "XE" + "0" * 32),
        ]
        if error_code is not None:
            params += [
                ("ErrorCode", str(error_code)),
                ("ErrorMessage", ERROR_MESSAGES.get(error_code, "error")),
            ]
        return await post_signed(
            message.status_callback,
            params,
            signature=self.sign(message.status_callback, params),
            via=via,
            client=client,
        )

    # --- the API ---------------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        """True when an Authorization header carries this account's basic auth."""
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header is not None and secrets.compare_digest(header, f"Basic {expected}")

    def create_message(self, account: str, params: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        """Messages.json: validate like Twilio, apply faults, record, answer."""
        form = dict(params)
        to = form.get("To", "")
        code = self._refusal(account, form)
        if code is not None:
            status = 429 if code == 20429 else 400
            return self._refuse(status, code, params)
        sid = f"SM{next(self._ids):032x}"
        with self._lock:
            self._state.attempts.append(SentMessage(sid, 201, tuple(params), at=time.monotonic()))
        now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        return 201, {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": None,
            "num_media": str(sum(1 for k, _ in params if k == "MediaUrl")),
            "num_segments": "1",
            "price": None,
            "price_unit": None,
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }

    def _refusal(self, account: str, form: dict[str, str]) -> int | None:
        to = form.get("To", "")
        with self._lock:
            for fault in self._state.faults:
                if fault.times > 0 and (fault.to is None or fault.to == to):
                    fault.times -= 1
                    self._state.faults = [f for f in self._state.faults if f.times > 0]
                    return fault.code
            closed = to in self._state.closed_windows
        if not (_ADDRESS.match(to) and _ADDRESS.match(form.get("From", ""))):
            return 21910
        content_sid = form.get("ContentSid")
        if content_sid is not None:
            if not _CONTENT_SID.match(content_sid):
                return 21656
            try:
                variables = json.loads(form.get("ContentVariables", "{}"))
            except ValueError:
                return 21656
            if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
                return 21656
        elif not form.get("Body") and "MediaUrl" not in form:
            return 21619
        elif len(form.get("Body", "")) > MAX_BODY:
            return 21617
        elif closed:
            return 63016
        callback = form.get("StatusCallback")
        if callback is not None and urlsplit(callback).scheme not in ("http", "https"):
            return 21609
        return None

    def _refuse(self, status: int, code: int, params: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._state.attempts.append(SentMessage(None, status, tuple(params), code, time.monotonic()))
        return status, error_json(status, code)

    def get_media(self, path: str, auth_header: str | None) -> tuple[int, dict[str, str], bytes]:
        """A media URL (auth required, 307 to the CDN) or a CDN URL (no auth)."""
        with self._lock:
            cdn_path = self._state.cdn.get(path)
            stored = self._state.media.get(cdn_path or path)
        authorized = self.authorized(auth_header)
        if cdn_path is not None and stored is not None:
            status, headers, body = 200, {"Content-Type": stored[0]}, stored[1]
        elif stored is None or not _MEDIA_PATH.match(path):
            status, headers, body = (
                404,
                {"Content-Type": "application/json"},
                json.dumps(error_json(404, 20404)).encode(),
            )
        elif not authorized:
            status, headers, body = (
                401,
                {"Content-Type": "application/json"},
                json.dumps(error_json(401, 20003)).encode(),
            )
        else:
            cdn = f"/cdn/{secrets.token_hex(16)}"
            with self._lock:
                self._state.cdn[cdn] = path
            status, headers, body = 307, {"Location": self.cdn_url + cdn}, b""
        with self._lock:
            self._state.media_requests.append(MediaRequest(path, authorized, auth_header is not None, status))
        return status, headers, body


def error_json(status: int, code: int) -> dict[str, Any]:
    """Twilio's error body."""
    return {
        "code": code,
        "message": ERROR_MESSAGES.get(code, "The requested resource was not found"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    twilio: FakeTwilio
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._reply(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8")
        match = _MESSAGES_PATH.match(urlsplit(self.path).path)
        if match is None or match["sid"] != self.twilio.account_sid:
            self._json(404, error_json(404, 20404))
            return
        if not self.twilio.authorized(self.headers.get("Authorization")):
            self._json(401, error_json(401, 20003))
            return
        status, payload = self.twilio.create_message(match["sid"], parse_qsl(raw, keep_blank_values=True))
        self._json(status, payload)

    def do_GET(self) -> None:
        account = _ACCOUNT_PATH.match(urlsplit(self.path).path)
        if account is not None:  # the account fetch (`pontibot doctor`)
            if account["sid"] != self.twilio.account_sid:
                self._json(404, error_json(404, 20404))
            elif not self.twilio.authorized(self.headers.get("Authorization")):
                self._json(401, error_json(401, 20003))
            else:
                self._json(200, {"sid": account["sid"], "status": "active", "type": "Full"})
            return
        status, headers, body = self.twilio.get_media(
            urlsplit(self.path).path, self.headers.get("Authorization")
        )
        self._reply(status, headers, body)


def _multi(params: list[tuple[str, str]] | dict[str, str]) -> ImmutableMultiDict[str, str]:
    return ImmutableMultiDict(params)


async def post_signed(
    url: str,
    params: list[tuple[str, str]],
    *,
    signature: str | None,
    via: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """POST a form as Twilio does, with ``signature`` (None: no header) to ``url`` or its path on ``via``."""
    target = url
    if via is not None:
        parts = urlsplit(url)
        target = via.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    body = urlencode(params)
    if client is not None:
        return await client.post(target, content=body, headers=headers)
    async with httpx.AsyncClient(timeout=10) as own:
        return await own.post(target, content=body, headers=headers)


def load_webhook(name: str, *, twilio_url: str = "", **fields: str) -> list[tuple[str, str]]:
    """A recorded webhook from tests/fixtures/twilio/<name>.txt, with fields replaced or added.

    ``__ACCOUNT__`` in values becomes :data:`ACCOUNT_SID` and ``__TWILIO__`` the fake's base URL.
    """
    raw = (FIXTURES / f"{name}.txt").read_text(encoding="utf-8").strip()
    pairs = [
        (k, v.replace("__ACCOUNT__", ACCOUNT_SID).replace("__TWILIO__", twilio_url))
        for k, v in parse_qsl(raw, keep_blank_values=True)
    ]
    for key, value in fields.items():
        if any(k == key for k, _ in pairs):
            pairs = [(k, value if k == key else v) for k, v in pairs]
        else:
            pairs.append((key, value))
    return pairs
