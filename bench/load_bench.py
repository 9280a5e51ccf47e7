"""Load benchmark: simulated residents over the web chat API and the Telegram webhook, 1 and 2 workers.

Each resident runs a realistic mixed conversation (greeting, documents, office hours, permit status with
the demo numbers, a complaint with its location) with think time between messages, waiting for the
bot's answer before thinking again: the web chat answer is the HTTP response; the Telegram answer is
the first ``sendMessage`` the fake Bot API server (tests/channels/fake_telegram.py) receives for that
chat after the webhook POST. Each configuration is a real ``pontibot run --workers N`` on SQLite (a
temporary file) or PostgreSQL (a dedicated database ``pontibot_bench``, created and dropped here),
measured for ``--seconds`` after a warm-up. Figures go to docs/BENCHMARKS.md between
``<!-- load:start -->`` and ``<!-- load:end -->``, with the load average of the (shared) machine.

    .venv/bin/python bench/load_bench.py [--residents 200] [--seconds 20] [--only sqlite-1,pg-2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from storage.migrate import upgrade  # noqa: E402
from tests.channels.fake_telegram import SEND_METHODS, FakeTelegram  # noqa: E402

DOC = REPO / "docs" / "BENCHMARKS.md"
START, END = "<!-- load:start -->", "<!-- load:end -->"
PG_ADMIN = os.environ.get("PONTIBOT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "pontibot_bench"
TARGET_RATE, TARGET_P99_MS, TARGET_SCALE = 300.0, 150.0, 1.5

# Conversations residents have (each a list of messages); picked at random per resident and repeated.
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


@dataclass
class Stats:
    """Latencies (seconds) and errors of one run, per channel."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"webchat": [], "telegram": []})
    errors: dict[str, int] = field(default_factory=lambda: {"webchat": 0, "telegram": 0})
    measuring: bool = False

    def record(self, channel: str, seconds: float | None) -> None:
        """Count one answered (or failed, ``None``) message if inside the measured window."""
        if not self.measuring:
            return
        if seconds is None:
            self.errors[channel] += 1
        else:
            self.latencies[channel].append(seconds)


class ReplySink(FakeTelegram):
    """The fake Bot API, also waking the resident waiting for a reply in its chat."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.waiting: dict[str, asyncio.Future[float]] = {}

    def _record(self, method: str, params: dict[str, Any], status: int) -> None:
        # Keep no history (a long run would grow it without bound), except setWebhook for startup.
        if method in SEND_METHODS and status == 200:
            self.loop.call_soon_threadsafe(self._wake, str(params.get("chat_id")), time.perf_counter())
        elif method == "setWebhook":
            super()._record(method, params, status)

    def _wake(self, chat_id: str, at: float) -> None:
        future = self.waiting.pop(chat_id, None)
        if future is not None and not future.done():
            future.set_result(at)


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank) in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))] * 1000


async def resident(
    index: int,
    url: str,
    http: aiohttp.ClientSession,
    sink: ReplySink,
    secret: str,
    stats: Stats,
    stop: Callable[[], bool],
) -> None:
    """One resident: web chat or Telegram, a random conversation again and again, thinking 2-4 s."""
    rng = random.Random(index)
    telegram = index % 2 == 1
    chat_id = str(900_000_000 + index)
    await asyncio.sleep(rng.uniform(0, 4))
    update_id = index * 1_000_000
    while not stop():
        for text in rng.choice(CONVERSATIONS):
            if stop():
                return
            started = time.perf_counter()
            try:
                if telegram:
                    update_id += 1
                    future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                    sink.waiting[chat_id] = future
                    async with http.post(
                        f"{url}/webhooks/telegram",
                        json=telegram_update(update_id, int(chat_id), text),
                        headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                    ) as response:
                        ok = response.status == 200
                    answered = await asyncio.wait_for(future, 10) if ok else None
                    stats.record("telegram", None if answered is None else answered - started)
                else:
                    body = {"session_id": f"bench-{index}", "text": text}
                    async with http.post(f"{url}/api/chat", json=body) as response:
                        await response.read()
                        ok = response.status == 200
                    stats.record("webchat", time.perf_counter() - started if ok else None)
            except (TimeoutError, aiohttp.ClientError):
                sink.waiting.pop(chat_id, None)
                stats.record("telegram" if telegram else "webchat", None)
            await asyncio.sleep(rng.uniform(2.0, 4.0))


def telegram_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    """A private-chat text message update as Telegram POSTs it."""
    user = {"id": chat_id, "is_bot": False, "first_name": "Warga", "language_code": "id"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Warga"},
            "from": user,
            "text": text,
        },
    }


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
    url: str, workers: int, sink: FakeTelegram, workdir: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """``pontibot run --workers N`` on a free port, Telegram in webhook mode against the fake."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data: dict[str, Any] = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    data["log_level"] = "WARNING"
    data["server"].update(port=port, public_url=f"http://127.0.0.1:{port}", media_dir=str(workdir / "media"))
    data["database"]["pool_size"] = 10
    data["nlu"]["model_dir"] = str(REPO / "var" / "nlu")
    data["telegram"].update(
        mode="webhook", base_url=sink.base_url, webhook_url=f"http://127.0.0.1:{port}/webhooks/telegram"
    )
    config = workdir / "config.yml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PONTIBOT_", "TWILIO_", "TELEGRAM_"))}
    env.update(DATABASE_URL=url, TELEGRAM_BOT_TOKEN=sink.token)
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "-c", str(config), "--workers", str(workers)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers are killed with it if it does not stop in time
    )
    return process, port


async def wait_ready(url: str, process: subprocess.Popen[bytes], workers: int, sink: FakeTelegram) -> None:
    """Until /healthz answers and every worker has registered the webhook."""
    deadline = time.monotonic() + 180
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200 and len(sink.calls("setWebhook")) >= workers:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("server not ready in 180 s")


async def run_configuration(kind: str, workers: int, residents: int, seconds: float) -> dict[str, Any]:
    """One measured run; the figures as a dict."""
    with tempfile.TemporaryDirectory(prefix="pontibot-load-") as tmp:
        workdir = Path(tmp)
        db_url = await asyncio.to_thread(prepare_database, kind, workdir)  # alembic runs its own loop
        sink = ReplySink(asyncio.get_running_loop()).start()
        process, port = start_server(db_url, workers, sink, workdir)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(url, process, workers, sink)
            secret = sink.webhook[1] or ""
            stats = Stats()
            stopping = False
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=10)
            ) as http:
                tasks = [
                    asyncio.create_task(resident(i, url, http, sink, secret, stats, lambda: stopping))
                    for i in range(residents)
                ]
                await asyncio.sleep(6)  # everyone has started and the caches are warm
                load_before = os.getloadavg()[0]
                stats.measuring = True
                started = time.perf_counter()
                await asyncio.sleep(seconds)
                stats.measuring = False
                elapsed = time.perf_counter() - started
                load_after = os.getloadavg()[0]
                stopping = True
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            sink.stop()
            if kind == "postgresql":
                psql(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    every = stats.latencies["webchat"] + stats.latencies["telegram"]
    return {
        "database": kind,
        "workers": workers,
        "residents": residents,
        "seconds": round(elapsed, 1),
        "messages": len(every),
        "rate": len(every) / elapsed,
        "p50": percentile(every, 50),
        "p95": percentile(every, 95),
        "p99": percentile(every, 99),
        "webchat_p99": percentile(stats.latencies["webchat"], 99),
        "telegram_p99": percentile(stats.latencies["telegram"], 99),
        "errors": sum(stats.errors.values()),
        "load": f"{load_before:.1f} → {load_after:.1f}",
    }


def render(rows: list[dict[str, Any]], residents: int) -> str:
    """The Markdown section."""
    lines = [
        "## Load: simulated residents, 1 and 2 workers (`bench/load_bench.py`)",
        "",
        f"{residents} residents (half web chat, "
        "half Telegram webhook, the fake Bot API taking the replies), "
        "each in a random mixed conversation (greeting, documents, office hours, permit status with demo "
        "numbers, complaint with a location), thinking 2-4 s between messages and waiting for the answer. "
        f"Measured on {os.cpu_count()} cores after a 6 s warm-up; the load generator and the fake run on "
        "the same machine. Load average (1 min) at the start → end of each run: the machine is shared.",
        "",
        "| database | workers | msgs/s | p50 ms | p95 ms | p99 ms | web p99 | telegram p99 | errors "
        "| load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['database']} | {r['workers']} | {r['rate']:.0f} | {r['p50']:.0f} | {r['p95']:.0f} | "
            f"{r['p99']:.0f} | {r['webchat_p99']:.0f} | {r['telegram_p99']:.0f} | {r['errors']} "
            f"| {r['load']} |"
        )
    lines += ["", *verdicts(rows)]
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The targets of issue 11, each met or not by these rows."""
    out = []
    for r in (r for r in rows if r["workers"] == 1):
        met = r["rate"] >= TARGET_RATE and r["p99"] <= TARGET_P99_MS and r["errors"] == 0
        out.append(
            f"- one worker on {r['database']}: {r['rate']:.0f} msgs/s, p99 {r['p99']:.0f} ms, "
            f"{r['errors']} errors "
            f"(target >= {TARGET_RATE:.0f} msgs/s, p99 <= {TARGET_P99_MS:.0f} ms, 0 errors): "
            + ("**met**" if met else "**not met**")
        )
    by = {(r["database"], r["workers"]): r for r in rows}
    one, two = by.get(("postgresql", 1)), by.get(("postgresql", 2))
    if one and two and one["rate"] > 0:
        scale = two["rate"] / one["rate"]
        out.append(
            f"- 2 workers on PostgreSQL: {scale:.2f}x one (target >= {TARGET_SCALE}x): "
            + ("**met**" if scale >= TARGET_SCALE else "**not met**")
        )
    return out


def write_doc(section: str) -> None:
    """Replace the load section of docs/BENCHMARKS.md (appended on first run)."""
    text = DOC.read_text(encoding="utf-8")
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")


async def main() -> None:
    """Run the configurations, print and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", default="sqlite-1,sqlite-2,postgresql-1,postgresql-2")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.only.split(","):
        kind, workers = name.rsplit("-", 1)
        row = await run_configuration(kind, int(workers), args.residents, args.seconds)
        print(json.dumps(row, ensure_ascii=False), flush=True)
        rows.append(row)
    section = render(rows, args.residents)
    print(section)
    if not args.no_write:
        write_doc(section)


if __name__ == "__main__":
    asyncio.run(main())
