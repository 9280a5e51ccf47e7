"""A fake Telegram Bot API server: real HTTP on 127.0.0.1, in a thread, recording every call.

Speaks what pontibot uses: getMe, getWebhookInfo, getUpdates (long poll with offset/timeout/limit; 409
while a webhook is set), setWebhook / deleteWebhook (updates are then POSTed to the webhook with the
secret header), sendMessage (``message_thread_id`` for forum topics), sendLocation, sendVenue,
answerCallbackQuery, getFile and ``/file/bot<token>/<path>``; createForumTopic and closeForumTopic (a
staff group forum). Faults: :meth:`FakeTelegram.fail_next` answers 429 (``parameters.retry_after``) or
any error code; :meth:`FakeTelegram.block_chat` answers 403 "bot was blocked by the user" for a chat,
like Telegram.

Usable from async tests, sync code and benchmarks::

    with FakeTelegram() as fake:
        bot_settings = {"base_url": fake.base_url}   # telegram.base_url; TELEGRAM_BOT_TOKEN = fake.token
        fake.push_update(update_dict)                # delivered by getUpdates or to the webhook
        await fake.wait_for("sendMessage")           # the recorded ApiCall
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

from tests.support.waiting import eventually

DEFAULT_TOKEN = "123456789:AAFakeTokenForPontibotTests_0123456789"
SEND_METHODS = frozenset({"sendMessage", "sendLocation", "sendVenue"})
# Parameters that are plain strings in a form-encoded call (everything else is JSON-encoded by ptb).
STRING_PARAMS = frozenset(
    {
        "text",
        "title",
        "address",
        "caption",
        "callback_query_id",
        "file_id",
        "url",
        "secret_token",
        "parse_mode",
        "foursquare_id",
        "google_place_id",
        "name",
        "icon_custom_emoji_id",
    }
)


@dataclass(frozen=True)
class ApiCall:
    """One request the fake received: method, decoded parameters, the status it answered."""

    method: str
    params: dict[str, Any]
    status: int
    at: float


@dataclass
class _Fault:
    method: str
    status: int
    description: str
    retry_after: int | None
    chat_id: str | None
    times: int


@dataclass
class _State:
    pending: list[dict[str, Any]] = field(default_factory=list)
    calls: list[ApiCall] = field(default_factory=list)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_allowed_updates: list[str] | None = None
    deliveries: list[tuple[int, int]] = field(default_factory=list)  # (update_id, HTTP status)
    polled: set[int] = field(default_factory=set)  # update ids getUpdates has returned
    topics: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # (chat, thread) -> topic


class FakeTelegram:
    """The fake Bot API server; start/stop it or use it as a context manager."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, username: str = "pontibot_test_bot") -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self._state = _State()
        self._cond = threading.Condition()
        self._closing = False
        self._message_ids = itertools.count(1000)
        self._update_ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._deliver: queue.Queue[dict[str, Any] | None] = queue.Queue()

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        """Listen on a free port of 127.0.0.1."""
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        serve = threading.Thread(target=self._server.serve_forever, name="fake-telegram", daemon=True)
        deliver = threading.Thread(target=self._deliver_loop, name="fake-telegram-webhook", daemon=True)
        self._threads = [serve, deliver]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Wake long polls, stop serving and delivering."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._deliver.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What to set as ``telegram.base_url``."""
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---- what tests do -------------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update (``update_id`` assigned when missing); pushing one id twice redelivers it."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        with self._cond:
            webhook = self._state.webhook_url
            if webhook is None:
                self._state.pending.append(update)
                self._cond.notify_all()
        if webhook is not None:
            self._deliver.put(update)
        return int(update["update_id"])

    def add_file(self, file_id: str, data: bytes, *, file_path: str | None = None) -> None:
        """Make ``file_id`` downloadable through getFile."""
        with self._cond:
            self._state.files[file_id] = (file_path or f"photos/{file_id}.jpg", data)

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        chat_id: str | int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (optionally to one chat) with an error."""
        text = description or (
            f"Too Many Requests: retry after {retry_after}" if status == 429 else f"Error {status}"
        )
        with self._cond:
            self._state.faults.append(
                _Fault(
                    method,
                    status,
                    text,
                    retry_after if status == 429 else None,
                    None if chat_id is None else str(chat_id),
                    times,
                )
            )

    def block_chat(self, chat_id: str | int) -> None:
        """Every send to ``chat_id`` gets 403 from now on (the user blocked the bot)."""
        with self._cond:
            self._state.blocked.add(str(chat_id))

    def unblock_chat(self, chat_id: str | int) -> None:
        """Sends to ``chat_id`` work again (the user unblocked the bot)."""
        with self._cond:
            self._state.blocked.discard(str(chat_id))

    def calls(self, method: str | None = None, *, ok_only: bool = False) -> list[ApiCall]:
        """Recorded calls, oldest first (of one method; only successful ones with ``ok_only``)."""
        with self._cond:
            calls = list(self._state.calls)
        return [
            c for c in calls if (method is None or c.method == method) and (not ok_only or c.status == 200)
        ]

    def sent(self, chat_id: str | int | None = None) -> list[ApiCall]:
        """Messages, locations and venues delivered (200), optionally to one chat."""
        return [
            c
            for c in self.calls(ok_only=True)
            if c.method in SEND_METHODS and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
        ]

    @property
    def webhook(self) -> tuple[str | None, str | None, list[str] | None]:
        """The registered webhook: (url, secret_token, allowed_updates)."""
        with self._cond:
            state = self._state
            return state.webhook_url, state.webhook_secret, state.webhook_allowed_updates

    @property
    def deliveries(self) -> list[tuple[int, int]]:
        """Webhook deliveries made: (update_id, HTTP status of the bot's answer)."""
        with self._cond:
            return list(self._state.deliveries)

    def confirmed(self, update_id: int) -> bool:
        """True once getUpdates returned ``update_id`` and a later call's offset confirmed it."""
        with self._cond:
            pending = {u["update_id"] for u in self._state.pending}
            return update_id in self._state.polled and update_id not in pending

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._cond:
            return list(self._state.pending)

    async def wait_for(
        self, method: str, *, count: int = 1, ok_only: bool = True, timeout: float = 10.0
    ) -> list[ApiCall]:
        """Wait until ``count`` calls of ``method`` were recorded; returns them all."""
        await eventually(
            lambda: len(self.calls(method, ok_only=ok_only)) >= count,
            timeout,
            what=f"{count} {method} calls",
        )
        return self.calls(method, ok_only=ok_only)

    async def wait_sent(
        self, count: int = 1, *, chat_id: str | int | None = None, timeout: float = 10.0
    ) -> list[ApiCall]:
        """Wait until ``count`` messages were delivered (to ``chat_id``); returns them all."""
        await eventually(lambda: len(self.sent(chat_id)) >= count, timeout, what=f"{count} messages sent")
        return self.sent(chat_id)

    # ---- the Bot API ---------------------------------------------------------------------------

    def bot_user(self) -> dict[str, Any]:
        """The bot's User object."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Ponti",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _record(self, method: str, params: dict[str, Any], status: int) -> None:
        with self._cond:
            self._state.calls.append(ApiCall(method, params, status, time.monotonic()))

    def _fault_for(self, method: str, params: dict[str, Any]) -> _Fault | None:
        with self._cond:
            chat = str(params.get("chat_id")) if "chat_id" in params else None
            if method in SEND_METHODS and chat in self._state.blocked:
                return _Fault(method, 403, "Forbidden: bot was blocked by the user", None, chat, 1)
            for fault in self._state.faults:
                if fault.method == method and (fault.chat_id is None or fault.chat_id == chat):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._state.faults.remove(fault)
                    return fault
        return None

    def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one Bot API call: (HTTP status, JSON body)."""
        fault = self._fault_for(method, params)
        if fault is not None:
            body: dict[str, Any] = {"ok": False, "error_code": fault.status, "description": fault.description}
            if fault.retry_after is not None:
                body["parameters"] = {"retry_after": fault.retry_after}
            return fault.status, body
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        return handler(params)  # type: ignore[no-any-return]

    def _ok(self, result: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": result}

    def _api_getMe(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._ok(self.bot_user())

    def _api_getUpdates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._state.webhook_url is not None:
                return 409, {
                    "ok": False,
                    "error_code": 409,
                    "description": "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                }
            if offset:
                self._state.pending = [u for u in self._state.pending if u["update_id"] >= offset]
            while not self._state.pending and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = self._state.pending[:limit]
            self._state.polled.update(u["update_id"] for u in batch)
            return self._ok(batch)

    def _api_setWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self._state.webhook_url = params.get("url") or None
            self._state.webhook_secret = params.get("secret_token")
            self._state.webhook_allowed_updates = params.get("allowed_updates")
            pending, self._state.pending = self._state.pending, []
        for update in pending:
            self._deliver.put(update)
        return self._ok(True)

    def _api_getWebhookInfo(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            url = self._state.webhook_url or ""
        return self._ok({"url": url, "has_custom_certificate": False, "pending_update_count": 0})

    def _api_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self._state.webhook_url = None
            self._state.webhook_secret = None
        return self._ok(True)

    def topics(self, chat_id: str | int | None = None) -> list[dict[str, Any]]:
        """Forum topics created so far (``chat_id``, ``message_thread_id``, ``name``, ``closed``)."""
        with self._cond:
            return [
                dict(t)
                for (chat, _), t in self._state.topics.items()
                if chat_id is None or chat == str(chat_id)
            ]

    def _message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": self.bot_user(),
            **content,
        }
        thread = params.get("message_thread_id")
        if thread is not None:
            message["message_thread_id"] = int(thread)
            message["is_topic_message"] = True
            message["chat"]["is_forum"] = True
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _api_sendMessage(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = str(params.get("text", ""))
        if not text.strip():
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        return self._ok(self._message(params, text=text))

    def _api_createForumTopic(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = str(params.get("name", ""))
        if not 1 <= len(name) <= 128:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid topic name"}
        chat = str(params.get("chat_id"))
        with self._cond:
            thread_id = next(self._message_ids)
            topic = {"chat_id": chat, "message_thread_id": thread_id, "name": name, "closed": False}
            self._state.topics[(chat, thread_id)] = topic
        return self._ok({"message_thread_id": thread_id, "name": name, "icon_color": 7322096})

    def _api_closeForumTopic(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = (str(params.get("chat_id")), int(params.get("message_thread_id") or 0))
        with self._cond:
            topic = self._state.topics.get(key)
            if topic is None:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: TOPIC_ID_INVALID"}
            topic["closed"] = True
        return self._ok(True)

    def _api_sendLocation(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        point = {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])}
        return self._ok(self._message(params, location=point))

    def _api_sendVenue(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        point = {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])}
        venue = {"location": point, "title": params["title"], "address": params["address"]}
        return self._ok(self._message(params, location=point, venue=venue))

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._ok(True)

    def _api_getFile(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = str(params.get("file_id"))
        with self._cond:
            known = self._state.files.get(file_id)
        if known is None:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
        path, data = known
        return self._ok(
            {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": len(data), "file_path": path}
        )

    def file_bytes(self, path: str) -> bytes | None:
        """The content served at ``/file/bot<token>/<path>``."""
        with self._cond:
            for file_path, data in self._state.files.values():
                if file_path == path:
                    return data
        return None

    # ---- webhook delivery ----------------------------------------------------------------------

    def _deliver_loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while (update := self._deliver.get()) is not None:
                url, secret, _ = self.webhook
                if url is None:
                    with self._cond:
                        self._state.pending.append(update)
                        self._cond.notify_all()
                    continue
                headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
                try:
                    status = client.post(url, json=update, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                with self._cond:
                    self._state.deliveries.append((int(update["update_id"]), status))

    async def wait_delivered(self, count: int = 1, *, timeout: float = 10.0) -> list[tuple[int, int]]:
        """Wait until ``count`` webhook deliveries were made."""
        await eventually(lambda: len(self.deliveries) >= count, timeout, what=f"{count} webhook deliveries")
        return self.deliveries


def _decode(name: str, value: str) -> Any:
    if name in STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class _Handler(BaseHTTPRequestHandler):
    owner: FakeTelegram
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence the access log
        return

    def _params(self) -> dict[str, Any]:
        query = dict(parse_qsl(urlsplit(self.path).query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        params: dict[str, Any] = {k: _decode(k, v) for k, v in query.items()}
        if kind == "application/json" and body:
            params.update(json.loads(body))
        elif kind == "application/x-www-form-urlencoded" and body:
            params.update({k: _decode(k, v) for k, v in parse_qsl(body.decode(), keep_blank_values=True)})
        return params

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a long poll cancelled at shutdown)

    def _dispatch(self) -> None:
        owner = self.owner
        path = unquote(urlsplit(self.path).path)
        file_prefix = f"/file/bot{owner.token}/"
        if path.startswith(file_prefix):
            data = owner.file_bytes(path[len(file_prefix) :])
            owner._record("file", {"path": path[len(file_prefix) :]}, 200 if data is not None else 404)
            if data is None:
                self._reply(404, b'{"ok":false,"error_code":404,"description":"Not Found"}')
            else:
                self._reply(200, data, "application/octet-stream")
            return
        prefix, _, method = path.rpartition("/")
        params = self._params()
        if prefix != f"/bot{owner.token}":
            owner._record(method, params, 401)
            self._reply(401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}')
            return
        status, answer = owner.handle(method, params)
        owner._record(method, params, status)
        self._reply(status, json.dumps(answer).encode())

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()
