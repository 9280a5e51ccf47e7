"""Load benchmark: the capacity of 1 and 2 server workers under simulated residents, in rising stages.

Residents (half web chat through ``POST /api/chat``, half Telegram through ``POST /webhooks/telegram``
with the webhook secret) each run a random mixed conversation (greeting, documents, office hours,
permit status with the demo numbers, a complaint with its location) again and again, thinking 2-4 s
(uniform) between messages and waiting for the bot's answer before thinking again: the web chat
answer is the HTTP response; the Telegram answer is the first send (``sendMessage``, ``sendLocation``,
``sendVenue``) the fake Bot API receives for that chat after the webhook POST. No answer within 10 s
is a timeout; a non-200 answer (or a refused connection) is a status error. A message counts in the
measured window it was sent in, followed to its outcome after the window closes.

Each configuration (``sqlite-1``, ``sqlite-2``, ``postgresql-1``, ``postgresql-2``) is one real
``pontibot run --workers N``, Telegram in webhook mode, on SQLite (a temporary file) or PostgreSQL (a
dedicated database ``pontibot_bench``, created and dropped here), started once; its limit of 30
Telegram sends/s per bot is lifted (``TELEGRAM_GLOBAL_RATE``: the fake has none, and the bench
measures the server). After a 5 s warm-up by a tenth of the first stage's residents, stages of
rising offered load run against it without a restart: the stage for a target of R msgs/s has
``R * 3.2`` residents (new ones join the running ones), so it offers ``residents / 3 s`` ≈ 1.07 R: a
closed loop delivers a little less than it offers (each resident also waits for its answers), and
the 300 stage must be able to reach 300. Each stage settles 4 s (up to 8 s while the backlog of its
joiners' first messages drains), then is measured for ``--stage-seconds``; the run stops after the
first stage that misses the SLO (p99 <= 150 ms and no errors) or achieves less than 90% of what it
offers. Per stage: achieved msgs/s, p50/p95/p99 (all, web, Telegram), timeouts and status errors,
CPU per message of the server (its process and workers), of PostgreSQL (every ``postgres`` process)
and of this bench itself, from /proc and ``time.process_time``, the bench's event-loop lag, and the
1-minute load average.

The load generator and the fake Bot API are one asyncio process on uvloop, so that what they take
from the 2 cores they share with the server and PostgreSQL is small, and measured: the residents send
pre-encoded requests over keep-alive HTTP/1.1 connections of their own making (a web chat resident has
its own connection, like a browser; Telegram's updates share up to 40, like Telegram's webhook
delivery), and the fake Bot API is an aiohttp low-level server. Figures go to docs/BENCHMARKS.md
between ``<!-- load:start -->`` and ``<!-- load:end -->``.

    .venv/bin/python bench/load_bench.py [--stages 150,225,300,375,450,525,600,675,750] [--stage-seconds 10]
        [--only sqlite-1,postgresql-2] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote_plus

import aiohttp
import uvloop
import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchdoc import replace_section  # noqa: E402 - bench/ is the script's directory

from storage.migrate import upgrade  # noqa: E402

PG_ADMIN = os.environ.get("PONTIBOT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "pontibot_bench"
CONFIGURATIONS = "sqlite-1,sqlite-2,postgresql-1,postgresql-2"

TARGET_RATE, TARGET_P99_MS, TARGET_SCALE = 300.0, 150.0, 1.5
DEFAULT_STAGES = "150,225,300,375,450,525,600,675,750"
THINK = (2.0, 4.0)  # seconds a resident thinks between messages (uniform)
MEAN_THINK = sum(THINK) / 2
RESIDENTS_PER_RATE = 3.2  # residents per target msg/s: offers 3.2 / 3 = 1.07x the target (see docstring)
SETTLE_SECONDS, MAX_SETTLE_SECONDS = 4.0, 8.0  # see run_stage
WARMUP_SHARE, WARMUP_SECONDS = 0.1, 5.0  # before the first stage (see run_configuration)
ANSWER_TIMEOUT = 10.0
MIN_ACHIEVED_SHARE = 0.9  # a stage achieving less than this share of its offered rate is saturated
LAG_TICK = 0.05  # seconds between the event-loop lag probes (each wake-up costs the bench CPU)
CLIENT_KEEPALIVE = 4.5  # seconds a connection is reused after its last answer: under uvicorn's 5 s
TELEGRAM_CONNECTIONS = 40  # Telegram's default max_connections for a webhook

TOKEN = "123456789:AAFakeTokenForPontibotLoadBench_012345678"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SEND_METHODS = frozenset({"sendMessage", "sendLocation", "sendVenue"})
FORM_FIELDS = (b"chat_id=", b"text=", b"secret_token=", b"url=")  # what the fake reads of a call
# Telegram allows a bot about 30 messages/s and the server's limiter enforces it per worker
# (notifications.rates.telegram_global); with half of 300+ msgs/s on Telegram that cap alone would
# queue replies without bound, and the fake Bot API has no such limit. The bench measures the server,
# so it lifts the global cap; the per-chat limit (1/s) stays as configured.
TELEGRAM_GLOBAL_RATE = 10_000.0

# Conversations residents have (each a list of messages); picked at random and repeated.
CONVERSATIONS: list[list[str]] = [
    ["halo", "syarat bikin KTP apa saja?", "terima kasih"],
    ["selamat pagi", "jam buka disdukcapil", "oke makasih"],
    ["cek status izin PBG-2026-00123", "terima kasih kak"],
    ["halo", "cek izin", "PBG-2026-00124", "makasih"],
    ["cek izin SLF-2026-00045", "ok"],
    ["apa saja syarat akta kelahiran?", "jam buka kantor camat", "terima kasih"],
    ["lapor jalan rusak", "Jalan Gajah Mada depan Kantor Camat Pontianak Kota", "batal"],
    ["lapor lampu jalan mati", "Jl. Tanjungpura dekat Pasar Kapuas Indah", "batal"],
]
CHANNELS = ("webchat", "telegram")


# ---- measuring -------------------------------------------------------------------------------------


@dataclass
class Window:
    """What happened in one measured stage window: latencies (seconds), errors, event-loop lags."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CHANNELS})
    timeouts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # "webchat 500"; status 0: no connection
    lags: list[float] = field(default_factory=list)
    pending: int = 0  # messages sent in the window and still without an outcome


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank) in milliseconds; NaN without values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))] * 1000


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[int, str, float]]:
    """Every process: pid -> (parent pid, comm, CPU seconds user + system, all its threads)."""
    table: dict[int, tuple[int, str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue  # it exited meanwhile
        # comm is in parentheses and may hold spaces or ')': split at the last one.
        head, _, tail = raw.rpartition(b")")
        fields = tail.split()
        comm = head.partition(b"(")[2].decode(errors="replace")
        table[int(entry.name)] = (int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return table


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every core, kernel work included): /proc/stat."""
    with open("/proc/stat", "rb") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS  # user nice system idle iowait irq softirq steal


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds per pid of the server's process tree and of PostgreSQL, and of the whole machine
    (which also counts what no process is charged for: the loopback network in the kernel, and
    PostgreSQL connections that came and went), at one moment."""

    server: dict[int, float]
    postgres: dict[int, float]
    machine: float

    @staticmethod
    def take(root: int) -> CpuSample:
        """Read /proc: the server process and its descendants, and every process named postgres."""
        table = processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        tree: set[int] = set()
        todo = [root]
        while todo:
            pid = todo.pop()
            if pid in table and pid not in tree:
                tree.add(pid)
                todo.extend(children.get(pid, ()))
        return CpuSample(
            {pid: table[pid][2] for pid in tree},
            {pid: cpu for pid, (_, comm, cpu) in table.items() if comm == "postgres"},
            machine_busy(),
        )


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two samples (a process born meanwhile counts from 0; one gone, not)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# ---- the fake Telegram Bot API ------------------------------------------------------------------


class BotApiSink:
    """A fake Bot API in the bench's own event loop; a send wakes the resident waiting on its chat."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.prefix = f"/bot{token}"
        self.bot_user = {"id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": "Ponti"}
        self.bot_user.update(username="pontibot_bench_bot", can_join_groups=True)
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.calls: Counter[str] = Counter()
        self.unmatched_sends = 0  # sends no resident was waiting for (a reply's 2nd message, late ones)
        self.webhook_secret: str | None = None
        self._message_ids = itertools.count(1000)
        self._runner: web.ServerRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        # The low-level server: no routing or middleware to pay for on every send.
        self._runner = web.ServerRunner(web.Server(self.handle, access_log=None))
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=1024, shutdown_timeout=1.0).start()
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        """Stop listening and close its connections."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """One Bot API call (python-telegram-bot posts form-encoded or JSON to /bot<token>/<method>)."""
        at = time.perf_counter()  # before reading the body: the answer has arrived
        prefix, _, method = request.path.rpartition("/")
        if prefix != self.prefix:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        body = await request.read()
        params: dict[str, Any]
        if request.content_type == "application/json":
            params = json.loads(body) if body else {}
        else:
            # Form-encoded (what httpx does with ptb's parameters): only the plain strings used here
            # are decoded; the rest (reply_markup, the bulk of a send) is skipped.
            params = {}
            for part in body.split(b"&"):
                if part.startswith(FORM_FIELDS):
                    name, _, value = part.partition(b"=")
                    params[name.decode()] = unquote_plus(value.decode())
        self.calls[method] += 1
        result: Any = True
        if method in SEND_METHODS:
            chat = str(params.get("chat_id"))
            future = self.waiting.pop(chat, None)
            if future is not None and not future.done():
                future.set_result(at)
            else:
                self.unmatched_sends += 1
            result = {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": int(chat), "type": "private"},
            }
            if method == "sendMessage":
                result["text"] = str(params.get("text", ""))
        elif method == "getMe":
            result = self.bot_user
        elif method == "setWebhook":
            self.webhook_secret = params.get("secret_token")
        return web.Response(
            body=json.dumps({"ok": True, "result": result}).encode(), content_type="application/json"
        )


# ---- the residents' HTTP client ----------------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a pre-encoded request at a time, answered with its status.

    aiohttp's client cost about 0.25 ms of CPU a request on this machine, this about 0.08 ms: the bench
    shares the 2 cores with the server, and only the end of a response matters to it, not its content.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.status = 0
        self.end = -1  # where the response ends in the buffer; -1: head not read yet; -2: at close
        self.chunked = False
        self.closed = False
        self.reusable = True
        self.requests = 0  # sent on it; from the 2nd on, the server may have closed it while idle
        self.answered = False  # a byte of the current response arrived
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, without the subclass

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the request in flight, or complete one whose body ends at the close."""
        self.closed, self.reusable = True, False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.end == -2:
                waiter.set_result(self.status)
            else:
                waiter.set_exception(ConnectionResetError("the server closed the connection"))

    def exchange(self, data: bytes) -> asyncio.Future[int]:
        """Send one request; the future gets the response's status once the whole response is in."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        self.end, self.chunked, self.answered = -1, False, False
        self.requests += 1
        if self.closed:  # lost while handed over from one request to the next: nothing would answer
            self.waiter.set_exception(ConnectionResetError("the server closed the connection"))
        else:
            self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        """Read the status and framing from the head, then wait for the end of the body."""
        self.answered = True
        buffer = self.buffer
        buffer += data
        if self.end == -1:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(buffer[:head_end]).lower()
            self.status = int(head[9:12])
            if b"\r\nconnection: close" in head:
                self.reusable = False
            length = head.find(b"\r\ncontent-length:")
            if length >= 0:
                value_end = head.find(b"\r\n", length + 2)
                self.end = head_end + 4 + int(head[length + 17 : value_end if value_end > 0 else None])
            elif b"\r\ntransfer-encoding: chunked" in head:
                self.chunked = True
                self.end = head_end + 4
            elif self.status in (204, 304):
                self.end = head_end + 4
            else:
                self.end, self.reusable = -2, False  # delimited by the close
        # Only the framing matters, not the content: a chunked body ends with the empty last chunk.
        if self.chunked:
            done = len(buffer) > self.end and buffer.endswith(b"\r\n0\r\n\r\n")
        else:
            done = 0 <= self.end <= len(buffer)
        if done and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.status)

    def close(self) -> None:
        """Drop the connection (a request in flight on it is abandoned)."""
        self.closed, self.reusable = True, False
        if self.transport is not None:
            self.transport.abort()


class HttpPool:
    """Up to ``limit`` keep-alive connections to the server, the longest idle reused first.

    Reusing the longest idle one spreads requests over every open connection, so over both workers
    (each worker accepts its own share of connections), as many separate clients would.
    """

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: deque[HttpConnection] = deque()
        self.busy = 0
        self.queue: deque[asyncio.Future[HttpConnection | None]] = deque()

    async def post(self, data: bytes) -> int:
        """Send a pre-encoded request; its status. A reused connection closed meanwhile is retried once."""
        for attempt in (1, 2):
            conn = await self._acquire()
            try:
                status = await conn.exchange(data)
            except ConnectionError:
                self._discard(conn)
                # The server closed it while idle and never read the request: a browser retries too.
                if attempt == 1 and conn.requests > 1 and not conn.answered:
                    continue
                raise
            except BaseException:
                self._discard(conn)  # timed out or cancelled with the request in flight
                raise
            self._release(conn)
            return status
        raise AssertionError("unreachable")

    async def _acquire(self) -> HttpConnection:
        """A connection to use: an idle one still fresh, a new one, or, at the limit, the next freed."""
        now = time.monotonic()
        while self.idle:
            conn = self.idle.popleft()
            if conn.reusable and now - conn.idle_since < CLIENT_KEEPALIVE:
                self.busy += 1
                return conn
            conn.close()
        if self.busy >= self.limit:
            waiter: asyncio.Future[HttpConnection | None] = asyncio.get_running_loop().create_future()
            self.queue.append(waiter)
            try:
                handed = await waiter  # a connection, or None: a slot to open one in (busy counted)
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    given = waiter.result()
                    if given is None:
                        self._discard(None)
                    else:
                        self._release(given)
                raise
            if handed is not None:
                return handed
        else:
            self.busy += 1
        try:
            _, conn = await asyncio.get_running_loop().create_connection(HttpConnection, self.host, self.port)
        except BaseException:
            self._discard(None)
            raise
        return conn

    def _next_waiter(self) -> asyncio.Future[HttpConnection | None] | None:
        """The first request still waiting for a connection, if any."""
        while self.queue:
            waiter = self.queue.popleft()
            if not waiter.done():
                return waiter
        return None

    def _release(self, conn: HttpConnection) -> None:
        """A request is done with ``conn``: to the next waiting request, else idle (or closed)."""
        if not conn.reusable:
            self._discard(conn)
            return
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(conn)  # stays busy, handed over
            return
        self.busy -= 1
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def _discard(self, conn: HttpConnection | None) -> None:
        """Close ``conn`` (None: a connection that never opened); its slot goes to the next waiting."""
        if conn is not None:
            conn.close()
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(None)  # its slot goes to the next in line, to open a new connection
        else:
            self.busy -= 1

    def close(self) -> None:
        """Close the idle connections (busy ones are closed by their cancelled requests)."""
        while self.idle:
            self.idle.popleft().close()


def request(path: str, host: str, body: bytes, extra: bytes = b"") -> bytes:
    """A pre-encoded JSON POST (``extra``: more header lines, each ending in CRLF)."""
    return (
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
        % (path.encode(), host.encode(), extra, len(body), body)
    )


# ---- the residents ---------------------------------------------------------------------------------


def telegram_update(update_id: int, chat_id: int, text: str) -> bytes:
    """A private-chat text message update as Telegram POSTs it."""
    user = {"id": chat_id, "is_bot": False, "first_name": "Warga", "language_code": "id"}
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private", "first_name": "Warga"},
                "from": user,
                "text": text,
            },
        }
    ).encode()


class Crowd:
    """The residents of one configuration, the window being measured, and the event-loop lag probe."""

    def __init__(self, port: int, sink: BotApiSink) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.secret_line = f"{SECRET_HEADER}: {sink.webhook_secret}\r\n".encode()
        # Telegram delivers a bot's updates over at most 40 connections (setWebhook max_connections).
        self.telegram = HttpPool("127.0.0.1", port, TELEGRAM_CONNECTIONS)
        self.pools: list[HttpPool] = [self.telegram]
        self.sink = sink
        self.window: Window | None = None
        self.in_flight = 0  # messages sent and not yet answered (or failed)
        self.tasks: list[asyncio.Task[None]] = []
        self.failures: list[BaseException] = []  # bugs of the bench itself, not errors of the server
        self.lag_probe = asyncio.create_task(self._probe_lag())

    def grow(self, residents: int) -> None:
        """Add residents (each with its own chat and session) until there are ``residents``."""
        while len(self.tasks) < residents:
            task = asyncio.create_task(self._resident(len(self.tasks)))
            task.add_done_callback(self._done)
            self.tasks.append(task)

    def _done(self, task: asyncio.Task[None]) -> None:
        """Keep the exception of a resident that died of it (a bug of the bench)."""
        if not task.cancelled() and (error := task.exception()) is not None:
            self.failures.append(error)

    async def stop(self) -> None:
        """Cancel every resident and the probe (messages in flight are abandoned), close connections."""
        for task in [*self.tasks, self.lag_probe]:
            task.cancel()
        await asyncio.gather(*self.tasks, self.lag_probe, return_exceptions=True)
        for pool in self.pools:
            pool.close()

    async def _probe_lag(self) -> None:
        """How late the loop wakes a short sleep: the bench's own share of the latencies."""
        while True:
            due = time.perf_counter() + LAG_TICK
            await asyncio.sleep(LAG_TICK)
            if self.window is not None:
                self.window.lags.append(max(0.0, time.perf_counter() - due))

    async def _resident(self, index: int) -> None:
        """One resident: web chat or Telegram, a random conversation again and again, thinking 2-4 s."""
        rng = random.Random(index)
        telegram = index % 2 == 1
        chat_id = 900_000_000 + index
        session = f"bench-{index}"
        update_id = index * 1_000_000
        # A web chat resident is a browser: a connection of its own, kept alive between messages.
        browser = None if telegram else HttpPool("127.0.0.1", self.port, 1)
        if browser is not None:
            self.pools.append(browser)
        await asyncio.sleep(rng.uniform(0, MEAN_THINK))  # joiners spread over a think time, not a burst
        while True:
            for text in rng.choice(CONVERSATIONS):
                if browser is None:
                    update_id += 1
                    await self._telegram(chat_id, update_id, text)
                else:
                    await self._webchat(browser, session, text)
                await asyncio.sleep(rng.uniform(*THINK))

    async def _webchat(self, browser: HttpPool, session: str, text: str) -> None:
        """One web chat message: the answer is the HTTP response."""
        body = json.dumps({"session_id": session, "text": text}).encode()
        data = request("/api/chat", self.host, body)
        window = self._start()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                status = await browser.post(data)
        except TimeoutError:
            self._record(window, "webchat", started, None, 0)
        except OSError:  # refused or reset: no answer
            self._record(window, "webchat", started, time.perf_counter(), 0)
        else:
            self._record(window, "webchat", started, time.perf_counter(), status)
        finally:
            self._end(window)

    async def _telegram(self, chat_id: int, update_id: int, text: str) -> None:
        """One Telegram message: POST the update, then wait for the first send to that chat."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        key = str(chat_id)
        self.sink.waiting[key] = future  # before the POST: the reply may come before its response
        data = request(
            "/webhooks/telegram", self.host, telegram_update(update_id, chat_id, text), self.secret_line
        )
        window = self._start()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                status = await self.telegram.post(data)
                answered = await future if status == 200 else time.perf_counter()
        except TimeoutError:
            self._record(window, "telegram", started, None, 0)
        except OSError:
            self._record(window, "telegram", started, time.perf_counter(), 0)
        else:
            self._record(window, "telegram", started, answered, status)
        finally:
            self._end(window)
            if self.sink.waiting.get(key) is future:
                del self.sink.waiting[key]

    def _start(self) -> Window | None:
        """A message is sent: the window it belongs to (if one is open), which waits for its outcome."""
        self.in_flight += 1
        window = self.window
        if window is not None:
            window.pending += 1
        return window

    def _end(self, window: Window | None) -> None:
        """A message has its outcome (or was abandoned)."""
        self.in_flight -= 1
        if window is not None:
            window.pending -= 1

    def _record(
        self, window: Window | None, channel: str, started: float, answered: float | None, status: int
    ) -> None:
        """Count one message (answered at ``answered``, or timed out: None) in the window it began in.

        By start, not by end: a message sent in the window and never answered times out after it
        closed, and must still count.
        """
        if window is None:
            return
        if answered is None:
            window.timeouts[channel] += 1
        elif status != 200:
            window.statuses[f"{channel} {status}"] += 1
        else:
            window.latencies[channel].append(answered - started)


# ---- one configuration -------------------------------------------------------------------------


def prepare_database(kind: str, workdir: Path) -> str:
    """A migrated empty database: a SQLite file, or PostgreSQL ``pontibot_bench`` (re)created."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    else:
        psql(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        psql(f"CREATE DATABASE {PG_DB}")
        url = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{PG_DB}"
    upgrade(url)
    return url


def psql(sql: str) -> None:
    """Run one statement on the PostgreSQL server as the admin user."""
    subprocess.run(["psql", PG_ADMIN, "-q", "-c", sql], check=True, capture_output=True)


def start_server(
    url: str, workers: int, sink: BotApiSink, workdir: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """``pontibot run --workers N`` on a free port, Telegram in webhook mode against the fake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data: dict[str, Any] = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    data["log_level"] = "WARNING"
    data["server"].update(port=port, public_url=f"http://127.0.0.1:{port}", media_dir=str(workdir / "media"))
    # Every simulated web chat resident comes from 127.0.0.1: lift the per-address new-session limit.
    data["server"].update(address_new_sessions_burst=1_000_000, address_new_sessions_per_minute=1_000_000)
    # ~20 turns are in flight at 300 msgs/s: a pool of 10 would open and close overflow connections
    # all the time (docs/DEPLOY.md sizes the pool the same way).
    data["database"]["pool_size"] = 20
    data["nlu"]["model_dir"] = str(REPO / "var" / "nlu")
    data["telegram"].update(
        mode="webhook", base_url=sink.base_url, webhook_url=f"http://127.0.0.1:{port}/webhooks/telegram"
    )
    data["notifications"]["rates"]["telegram_global"] = TELEGRAM_GLOBAL_RATE
    config = workdir / "config.yml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PONTIBOT_", "TWILIO_", "TELEGRAM_"))}
    env.update(DATABASE_URL=url, TELEGRAM_BOT_TOKEN=sink.token)
    with (workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "-c", str(config), "--workers", str(workers)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: Ctrl-C here does not reach it half-way, and stop_server can kill
            # every worker at once if the supervisor does not stop in time.
            start_new_session=True,
        )
    return process, port


async def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to its whole process group after 30 s or if a worker outlives it.

    Waits without blocking the loop: while it stops, the server still sends its last replies to the
    fake Bot API in this loop (blocked, it would hold the server's drain for its whole grace period).
    """
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM meanwhile: a second one must not leave a server or a database behind."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def wait_ready(url: str, process: subprocess.Popen[bytes], workers: int, sink: BotApiSink) -> None:
    """Until /healthz answers and every worker has registered the webhook."""
    deadline = time.monotonic() + 180
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200 and sink.calls["setWebhook"] >= workers:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("server not ready in 180 s")


async def run_configuration(
    kind: str, workers: int, stages: list[int], stage_seconds: float
) -> list[dict[str, Any]]:
    """Start the server once, run the stages until one misses; one row per stage."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pontibot-load-") as tmp:
        workdir = Path(tmp)
        sink = BotApiSink(TOKEN)
        process: subprocess.Popen[bytes] | None = None
        try:
            await sink.start()
            db_url = await asyncio.to_thread(prepare_database, kind, workdir)  # alembic runs its own loop
            process, port = start_server(db_url, workers, sink, workdir)
            url = f"http://127.0.0.1:{port}"
            await wait_ready(url, process, workers, sink)
            if not sink.webhook_secret:
                raise RuntimeError("setWebhook came without a secret_token")
            crowd = Crowd(port, sink)
            try:
                # A fresh server is slow to its first answers (lazy imports, empty caches, connections
                # still opening): a tenth of the first stage's residents warm it up, unmeasured.
                crowd.grow(round(stages[0] * RESIDENTS_PER_RATE * WARMUP_SHARE))
                await asyncio.sleep(WARMUP_SECONDS)
                for target in stages:
                    row = await run_stage(crowd, process.pid, target, stage_seconds)
                    row.update(configuration=f"{kind}-{workers}", database=kind, workers=workers)
                    rows.append(row)
                    print(json.dumps(row, ensure_ascii=False), flush=True)
                    if crowd.failures:
                        error = crowd.failures[0]
                        traceback.print_exception(error)
                        raise RuntimeError("a resident of the bench failed (above)") from error
                    if not row["slo_met"] or row["saturated"]:
                        break
            finally:
                await crowd.stop()
            print(
                json.dumps({"configuration": f"{kind}-{workers}", "bot_api_calls": dict(sink.calls)}),
                flush=True,
            )
        finally:
            with no_interrupts():
                if process is not None:
                    await stop_server(process)
                await sink.stop()
                if kind == "postgresql":
                    psql(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    return rows


async def run_stage(crowd: Crowd, server_pid: int, target: int, seconds: float) -> dict[str, Any]:
    """Grow the crowd to the stage's size, settle, measure; the stage's figures."""
    residents = round(target * RESIDENTS_PER_RATE)
    offered = residents / MEAN_THINK
    crowd.grow(residents)
    await asyncio.sleep(SETTLE_SECONDS)
    settled = SETTLE_SECONDS
    # A joiner's first message costs the server more (a new resident, a new conversation): wait out the
    # backlog a stage's joiners leave, so that the window measures the steady state. Drained: the mean
    # latency (by Little's law, in flight / rate) is within the SLO's p99.
    while crowd.in_flight > offered * TARGET_P99_MS / 1000 and settled < MAX_SETTLE_SECONDS:
        await asyncio.sleep(0.25)
        settled += 0.25
    unmatched = crowd.sink.unmatched_sends
    cpu_before = CpuSample.take(server_pid)
    load_before = os.getloadavg()[0]
    # The bench's own clocks go innermost: reading /proc is not charged to the bench's figure.
    bench_before, started = time.process_time(), time.perf_counter()
    window = crowd.window = Window()
    await asyncio.sleep(seconds)
    crowd.window = None
    elapsed, bench_cpu = time.perf_counter() - started, time.process_time() - bench_before
    cpu_after = CpuSample.take(server_pid)
    load_after = os.getloadavg()[0]
    # The window's messages still in flight: their answers or timeouts (at most ANSWER_TIMEOUT away).
    deadline = time.monotonic() + ANSWER_TIMEOUT + 1
    while window.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.05)

    every = window.latencies["webchat"] + window.latencies["telegram"]
    messages = len(every)
    timeouts, bad = sum(window.timeouts.values()), sum(window.statuses.values())
    achieved = messages / elapsed
    p99 = percentile(every, 99)
    per_message = 1000 / max(messages, 1)
    row: dict[str, Any] = {
        "target": target,
        "residents": residents,
        "offered": round(offered, 1),
        "achieved": round(achieved, 1),
        "messages": messages,
        "settle": settled,
        "seconds": round(elapsed, 2),
        "p50": percentile(every, 50),
        "p95": percentile(every, 95),
        "p99": p99,
    }
    for channel in CHANNELS:
        for pct in (50, 95, 99):
            row[f"{channel}_p{pct}"] = percentile(window.latencies[channel], pct)
    row.update(
        timeouts=timeouts,
        bad_status=bad,
        errors=timeouts + bad,
        statuses=dict(window.statuses),
        server_cpu_ms=cpu_spent(cpu_before.server, cpu_after.server) * per_message,
        pg_cpu_ms=cpu_spent(cpu_before.postgres, cpu_after.postgres) * per_message,
        machine_cpu_ms=(cpu_after.machine - cpu_before.machine) * per_message,
        bench_cpu_ms=bench_cpu * per_message,
        bench_cores=bench_cpu / elapsed,
        loop_lag_p99=percentile(window.lags, 99),
        extra_sends=crowd.sink.unmatched_sends - unmatched,
        load=[round(load_before, 2), round(load_after, 2)],
        slo_met=messages > 0 and p99 <= TARGET_P99_MS and timeouts + bad == 0,
        saturated=achieved < MIN_ACHIEVED_SHARE * offered,
    )
    for key in (
        "p50",
        "p95",
        "p99",
        "server_cpu_ms",
        "pg_cpu_ms",
        "machine_cpu_ms",
        "bench_cpu_ms",
        "loop_lag_p99",
    ):
        row[key] = round(row[key], 2)
    for key in (k for k in row if k.endswith(("_p50", "_p95", "_p99"))):
        row[key] = round(row[key], 2)
    row["bench_cores"] = round(row["bench_cores"], 3)
    return row


# ---- the report ------------------------------------------------------------------------------------


def capacity(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The stage with the highest achieved rate among those that met the SLO, if any did."""
    met = [r for r in rows if r["slo_met"]]
    return max(met, key=lambda r: r["achieved"]) if met else None


def ms(value: float) -> str:
    """Milliseconds for a table cell ('–' when there was nothing to measure)."""
    return "–" if math.isnan(value) else f"{value:.0f}"


def render(rows: list[dict[str, Any]], stages: list[int], stage_seconds: float, started: str) -> str:
    """The Markdown section: method, one table per configuration, the summary and the verdicts."""
    lines = [
        "## Load: simulated residents, 1 and 2 workers (`bench/load_bench.py`)",
        "",
        f"Command: `.venv/bin/python bench/load_bench.py --stages {','.join(map(str, stages))} "
        f"--stage-seconds {stage_seconds:g}` — {started}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared by the server, PostgreSQL, the bench and whatever else runs "
        "(load average: 1 minute, at the start → end of each stage).",
        "",
        "Residents, half on the web chat (`POST /api/chat`) and half on Telegram (the webhook, with its "
        "secret), each run a random mixed conversation (greeting, documents, office hours, permit status "
        "with demo numbers, complaint with a location, cancelled) again and again, thinking 2-4 s "
        "between messages and waiting for the answer: the HTTP response, or on Telegram the first send "
        "the fake Bot API receives for the chat. The server (`pontibot run --workers N`) is started once "
        "per configuration; stages of rising load then run against it, each adding residents to the "
        "running ones: the stage for R msgs/s has R × 3.2 residents, offering residents / 3 s ≈ 1.07 R "
        f"(the 300 stage: {round(300 * RESIDENTS_PER_RATE)} residents offering "
        f"{300 * RESIDENTS_PER_RATE / MEAN_THINK:.0f} msgs/s), because a closed loop achieves a bit "
        "less than it offers (every resident also waits for its answers). Before the first stage a "
        f"tenth of its residents warm the fresh server up for {WARMUP_SECONDS:g} s. Each stage settles "
        f"{SETTLE_SECONDS:g} s, longer (up to {MAX_SETTLE_SECONDS:g} s, column *settle*) while the "
        "backlog its joiners leave drains (a new resident's first message costs the server more; "
        "drained: messages in flight / offered rate, the mean latency by Little's law, within "
        f"{TARGET_P99_MS:.0f} ms), and is then measured for {stage_seconds:g} s. A configuration stops "
        f"after the first stage that misses the SLO (p99 <= {TARGET_P99_MS:.0f} ms, no timeout — no "
        f"answer within {ANSWER_TIMEOUT:g} s — and no non-200 status) or achieves less than "
        f"{MIN_ACHIEVED_SHARE:.0%} of its offer.",
        "",
        "A message counts in the window it was sent in, followed to its answer or timeout after the "
        "window closes; *achieved* = messages sent in the window and answered / its length. "
        "CPU ms per message = CPU time (user + system, /proc) in the measured window / those messages: "
        "*server* is the `pontibot run` process and its workers; *PG* every `postgres` process "
        "on the machine (other databases' work too, also under SQLite; connections that closed within "
        "the window are missed); *machine* all cores' busy time (/proc/stat: everything above plus the "
        "kernel's loopback networking and anything else running); *bench* this benchmark's own "
        "process (`time.process_time`): load generator and fake Bot API, one asyncio process on uvloop "
        "(pre-encoded requests on keep-alive connections: one per web chat resident, as a browser "
        "keeps, and up to 40 shared by the Telegram updates, as Telegram delivers them; the fake Bot API "
        f"an aiohttp low-level server). *Lag* is the p99 delay of the bench's event loop waking a "
        f"{LAG_TICK * 1000:.0f} ms sleep, part of every latency measured. The server's limit of 30 "
        "Telegram sends/s per bot (`notifications.rates.telegram_global`, which Telegram imposes on real "
        f"bots) is raised to {TELEGRAM_GLOBAL_RATE:.0f} here: the fake Bot API has no such limit, and at "
        "30/s the Telegram half alone would cap a worker near 60 msgs/s; the per-chat limit (1/s) stays.",
        "",
    ]
    configurations = list(dict.fromkeys(r["configuration"] for r in rows))
    for name in configurations:
        lines += [
            f"### {name}",
            "",
            "| target | residents | offered | settle s | achieved | p50/p95/p99 ms | web p50/p95/p99 "
            "| telegram p50/p95/p99 | timeouts | non-200 | server ms/msg | PG ms/msg | bench ms/msg "
            "| machine ms/msg | lag p99 ms | load avg | SLO |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["configuration"] == name):
            triple = "/".join(ms(r[k]) for k in ("p50", "p95", "p99"))
            web = "/".join(ms(r[f"webchat_p{p}"]) for p in (50, 95, 99))
            telegram = "/".join(ms(r[f"telegram_p{p}"]) for p in (50, 95, 99))
            verdict = "met" if r["slo_met"] else "missed"
            if r["saturated"]:
                verdict += ", saturated"
            lines.append(
                f"| {r['target']} | {r['residents']} | {r['offered']:.0f} | {r['settle']:g} "
                f"| {r['achieved']:.0f} | {triple} "
                f"| {web} | {telegram} | {r['timeouts']} | {r['bad_status']} | {r['server_cpu_ms']:.2f} "
                f"| {r['pg_cpu_ms']:.2f} | {r['bench_cpu_ms']:.2f} | {r['machine_cpu_ms']:.2f} "
                f"| {ms(r['loop_lag_p99'])} "
                f"| {r['load'][0]:.1f} → {r['load'][1]:.1f} | {verdict} |"
            )
        lines.append("")
    lines += [
        "### Summary",
        "",
        "| configuration | 300 stage: achieved msgs/s | p99 ms | errors | capacity msgs/s "
        "| at capacity: server ms/msg | PG ms/msg | bench ms/msg | machine ms/msg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in configurations:
        mine = [r for r in rows if r["configuration"] == name]
        at300 = next((r for r in mine if r["target"] == TARGET_RATE), None)
        first = (
            f"{at300['achieved']:.0f} | {ms(at300['p99'])} | {at300['errors']}"
            if at300
            else "not run | – | –"
        )
        best = capacity(mine)
        last = (
            f"{best['achieved']:.0f} | {best['server_cpu_ms']:.2f} | {best['pg_cpu_ms']:.2f} "
            f"| {best['bench_cpu_ms']:.2f} | {best['machine_cpu_ms']:.2f}"
            if best
            else "none (no stage met the SLO) | – | – | – | –"
        )
        lines.append(f"| {name} | {first} | {last} |")
    lines += [
        "",
        "Capacity: the highest achieved rate of a stage that met the SLO, so only as the stages: "
        "a ratio of two capacities can be off by up to a stage step either way (`--stages` with smaller "
        "steps narrows it).",
        "",
        *verdicts(rows),
    ]
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The targets of issue 11, each met or not by these rows."""
    out = []
    goal = f">= {TARGET_RATE:.0f} msgs/s with p99 <= {TARGET_P99_MS:.0f} ms and 0 errors"
    for kind in ("sqlite", "postgresql"):
        mine = [r for r in rows if r["configuration"] == f"{kind}-1"]
        if not mine:
            continue
        at300 = next((r for r in mine if r["target"] == TARGET_RATE), None)
        if at300 is None:
            # Stopped below 300 (a lower stage missed): not met; no stage of 300 at all: not measured.
            last = mine[-1]
            missed = last["target"] < TARGET_RATE and (not last["slo_met"] or last["saturated"])
            out.append(
                f"- one worker on {kind}, {goal}: "
                + (f"**not met** (stopped at the {mine[-1]['target']} stage)" if missed else "not measured")
            )
            continue
        met = at300["slo_met"] and at300["achieved"] >= TARGET_RATE
        out.append(
            f"- one worker on {kind}, {goal}: {at300['achieved']:.0f} msgs/s, p99 {ms(at300['p99'])} ms, "
            f"{at300['timeouts']} timeouts, {at300['bad_status']} non-200 at the 300 stage: "
            + ("**met**" if met else "**not met**")
        )
    one = [r for r in rows if r["configuration"] == "postgresql-1"]
    two = [r for r in rows if r["configuration"] == "postgresql-2"]
    if one and two:
        cap1, cap2 = capacity(one), capacity(two)
        goal = f"2 workers on PostgreSQL >= {TARGET_SCALE}x the capacity of one"
        if cap1 is None:
            out.append(f"- {goal}: **not determined** (one worker met the SLO at no stage)")
        else:
            scale = (cap2["achieved"] if cap2 else 0.0) / cap1["achieved"]
            ceiling = None
            if cap2 is not None and cap2["machine_cpu_ms"] > 0:
                # One worker is bound by its one core (1 / server CPU per message); two workers share
                # every core with PostgreSQL, the bench and the kernel (cores / machine CPU per message).
                ceiling = (os.cpu_count() or 1) * cap2["server_cpu_ms"] / cap2["machine_cpu_ms"]
            if ceiling is not None and scale > ceiling * 1.05:
                # More than the cores allow: one worker's capacity was cut short by a stage step (its
                # next stage missed the SLO narrowly), not two workers doing the impossible.
                verdict = "**not established** (above what this machine allows: one worker's capacity is "
                verdict += "underestimated by a stage step; see the ceiling)"
            else:
                verdict = "**met**" if scale >= TARGET_SCALE else "**not met**"
            out.append(
                f"- {goal}: {cap2['achieved'] if cap2 else 0:.0f} / {cap1['achieved']:.0f} msgs/s = "
                f"{scale:.2f}x: {verdict}"
            )
            if ceiling is not None and cap2 is not None:
                cores = os.cpu_count() or 1
                out.append(
                    f"  - the most this machine allows: {cores} cores x server {cap2['server_cpu_ms']:.2f}"
                    f" ms / machine {cap2['machine_cpu_ms']:.2f} ms per message (at 2 workers' capacity)"
                    f" = {ceiling:.2f}x, with everything on the same {cores} cores"
                )
    return out


async def main() -> None:
    """Run the configurations, print and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=DEFAULT_STAGES, help="target msgs/s of the stages, rising")
    parser.add_argument("--stage-seconds", type=float, default=10.0, help="measured seconds per stage")
    parser.add_argument("--only", default=CONFIGURATIONS, help="configurations, e.g. sqlite-1,postgresql-2")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md")
    args = parser.parse_args()
    stages = [int(s) for s in args.stages.split(",")]
    # SIGTERM cleans up like Ctrl-C does (the runner turns Ctrl-C into cancelling this task).
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    # Thousands of residents each keep a connection when the server is slow: lift the soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    started = time.strftime("%Y-%m-%d %H:%M")
    rows: list[dict[str, Any]] = []
    for name in args.only.split(","):
        kind, workers = name.rsplit("-", 1)
        rows += await run_configuration(kind, int(workers), stages, args.stage_seconds)
    section = render(rows, stages, args.stage_seconds, started)
    print(section)
    if not args.no_write:
        replace_section("load", section)


if __name__ == "__main__":
    try:
        uvloop.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM: cleaned up on the way out
        sys.exit("load_bench: interrupted (servers stopped, the bench database dropped)")
