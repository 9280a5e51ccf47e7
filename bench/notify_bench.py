"""Notification benchmark: the outbox through a local fake Telegram at the real limits, then with crashes.

Run: ``.venv/bin/python bench/notify_bench.py`` (part of ``make bench``; about 12 minutes). Writes its
figures into docs/BENCHMARKS.md between ``<!-- notify:start -->`` and ``<!-- notify:end -->``.

Each run queues N notifications to R residents straight into the outbox (a fresh SQLite database),
starts ``pontibot run`` as its own process with Telegram pointed at the fake Bot API server
(tests/support/fake_telegram.py, real HTTP), and watches the fake record what arrives:

1. steady: telegram_global 30/s and telegram_per_chat 1/s (Telegram's limits); achieved rate, the
   busiest one-second window (sliding, on the fake's clock) and the closest two messages to one chat.
2. crash: the same, with the server SIGKILLed twice mid-run (at a third and two thirds) and
   restarted; every (chat, message) must arrive exactly once.

The kills are made while sends are in flight and held at the fake before Telegram processed them,
once every send Telegram already answered is recorded (the "gate"; the test suite's scaled-down run
does the same): exactly the case the outbox guarantees. ``--anywhere`` kills wherever the sends happen
to be, so a kill may land in the residual window (Telegram accepted, ``sent`` not yet committed) and
that message then arrives twice; see docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import func, insert, select  # noqa: E402

from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import OutboxMessage, Resident  # noqa: E402
from tests.support import fake_telegram  # noqa: E402
from tests.support.fake_telegram import FakeTelegram  # noqa: E402

# The fake writes headers and body in two send() calls; with Nagle's algorithm and the client's delayed
# ACK that stalls every answer ~40 ms, which Telegram's servers do not do. Send segments at once.
fake_telegram._Handler.disable_nagle_algorithm = True

DOC = REPO / "docs" / "BENCHMARKS.md"
START, END = "<!-- notify:start -->", "<!-- notify:end -->"
CHAT_BASE = 700_000_000


class GatedTelegram(FakeTelegram):
    """The fake Bot API whose sendMessage can be held at a gate; held calls are dropped unprocessed.

    Closing the gate models the network between us and Telegram stalling: requests are in flight, and
    Telegram has not processed them. Opening it again answers them 502 without delivering anything.
    """

    def __init__(self) -> None:
        super().__init__()
        self._open = threading.Event()
        self._open.set()
        self._dropping = False
        self.held = 0

    def close_gate(self) -> None:
        self._dropping = True
        self._open.clear()

    def open_gate(self) -> None:
        self._open.set()

    def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "sendMessage" and not self._open.is_set():
            self.held += 1
            self._open.wait()
            return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        return super().handle(method, params)


@dataclass
class Scenario:
    """One benchmark run."""

    messages: int = 10_000
    residents: int = 2_000
    global_rate: float = 30.0
    per_chat_rate: float = 1.0
    kills: int = 0
    gate: bool = False
    lease_seconds: float = 30.0
    database_url: str | None = None  # default: a fresh SQLite file
    model_dir: str | None = None
    timeout: float = 1800.0
    seed: int = 8


@dataclass
class Report:
    """What a run measured."""

    messages: int
    residents: int
    global_rate: float
    per_chat_rate: float
    kills: int
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    max_window: int = 0
    min_chat_gap: float = 0.0
    max_chat_window: int = 0
    in_flight_at_kills: list[int] = field(default_factory=list)
    restarts_seconds: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def max_in_window(times: list[float], width: float) -> int:
    """The most events in any half-open window [t, t + width) (sliding)."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


async def enqueue(db: Database, scenario: Scenario) -> None:
    """Residents and their notifications, in a shuffled order (a chat's messages are spread out)."""
    now = datetime.now(UTC)
    async with db.session() as session:
        await session.execute(
            insert(Resident),
            [
                {
                    "channel": "telegram",
                    "external_id": str(CHAT_BASE + i),
                    "language": "id",
                    "opted_out": False,
                    "unreachable": False,
                    "created_at": now,
                }
                for i in range(scenario.residents)
            ],
        )
        ids = dict((await session.execute(select(Resident.external_id, Resident.id))).all())
        order = list(range(scenario.messages))
        random.Random(scenario.seed).shuffle(order)
        rows = []
        for k in order:
            chat = str(CHAT_BASE + k % scenario.residents)
            rows.append(
                {
                    "resident_id": ids[chat],
                    "channel": "telegram",
                    "chat_id": chat,
                    "kind": "notification",
                    "body": {"text": f"bench {k}", "buttons": []},
                    "idempotency_key": f"bench:{k}",
                    "status": "pending",
                    "urgent": False,
                    "attempts": 0,
                    "not_before": now,
                    "created_at": now,
                }
            )
        for start in range(0, len(rows), 1000):
            await session.execute(insert(OutboxMessage), rows[start : start + 1000])


async def statuses(db: Database) -> dict[str, int]:
    async with db.session() as session:
        stmt = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        return {status: int(count) for status, count in (await session.execute(stmt)).all()}


def start_server(
    scenario: Scenario, fake: FakeTelegram, database_url: str, workdir: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "PONTIBOT_TELEGRAM__BASE_URL": fake.base_url,
        "PONTIBOT_TELEGRAM__POLL_TIMEOUT": "1",
        "PONTIBOT_DATABASE__URL": database_url,
        "PONTIBOT_SERVER__PORT": str(free_port()),
        "PONTIBOT_SERVER__MEDIA_DIR": str(workdir / "media"),
        "PONTIBOT_NOTIFICATIONS__QUIET_HOURS": "",
        "PONTIBOT_NOTIFICATIONS__RATES": json.dumps(
            {
                "telegram_global": scenario.global_rate,
                "telegram_per_chat": scenario.per_chat_rate,
                "whatsapp": 1,
            }
        ),
        "PONTIBOT_NOTIFICATIONS__CLAIM_LEASE_SECONDS": str(scenario.lease_seconds),
        "PONTIBOT_NOTIFICATIONS__DISPATCH_INTERVAL_SECONDS": "0.5",
        "PONTIBOT_NOTIFICATIONS__LEADER_RETRY_SECONDS": "0.5",
        "PONTIBOT_NOTIFICATIONS__POLL_INTERVAL_SECONDS": "60",
        "PONTIBOT_LOG_LEVEL": "WARNING",
    }
    if scenario.model_dir:
        env["PONTIBOT_NLU__MODEL_DIR"] = scenario.model_dir
    env.pop("DATABASE_URL", None)
    log = (workdir / "server.log").open("ab")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "pontibot"), "run", "--config", str(REPO / "config.yml")],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )


def delivered(fake: FakeTelegram) -> int:
    return len(fake.sent())


def unique_delivered(fake: FakeTelegram) -> int:
    return len({(str(c.params["chat_id"]), str(c.params["text"])) for c in fake.sent()})


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def run(scenario: Scenario) -> Report:
    """Queue, deliver through a ``pontibot run`` process (killed ``kills`` times), measure."""
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    database_url = scenario.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    if scenario.database_url is None:
        await asyncio.to_thread(upgrade, database_url)
    db = Database(database_url)
    report = Report(
        scenario.messages, scenario.residents, scenario.global_rate, scenario.per_chat_rate, scenario.kills
    )
    fake = GatedTelegram().start()
    server: subprocess.Popen[bytes] | None = None
    try:
        await enqueue(db, scenario)
        server = start_server(scenario, fake, database_url, workdir)
        for kill in range(1, scenario.kills + 1):
            target = scenario.messages * kill // (scenario.kills + 1)
            await wait_until(lambda t=target: delivered(fake) >= t, scenario.timeout, f"{target} delivered")
            if scenario.gate:
                fake.close_gate()
                held = fake.held
                await wait_until(lambda h=held: fake.held > h, 30, "a send held at the gate")
                # Kill only once every answered send is recorded: then nothing is in the residual window
                # (accepted by Telegram, "sent" not yet committed) and the guarantee is checked exactly.
                deadline = time.monotonic() + 30
                while (await statuses(db)).get("sent", 0) < unique_delivered(fake):
                    if time.monotonic() > deadline:
                        raise TimeoutError("answered sends not recorded")
                    await asyncio.sleep(0.05)
            server.send_signal(signal.SIGKILL)
            server.wait()
            if scenario.gate:
                # Requests the dead process had already written may still be read by the fake's threads:
                # they stop at the closed gate too, and are dropped when it opens.
                await asyncio.sleep(0.5)
                fake.open_gate()
            report.in_flight_at_kills.append((await statuses(db)).get("sending", 0))
            began = time.monotonic()
            server = start_server(scenario, fake, database_url, workdir)
            before = delivered(fake)
            await wait_until(lambda b=before: delivered(fake) > b, 120, "delivery after the restart")
            report.restarts_seconds.append(round(time.monotonic() - began, 2))
        deadline = time.monotonic() + scenario.timeout
        while True:
            counts = await statuses(db)
            if counts.get("sent", 0) + counts.get("dead", 0) + counts.get("skipped", 0) >= scenario.messages:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"not finished: {counts}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
        report.statuses = await statuses(db)
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        fake.stop()
        await db.dispose()
    return analyse(report, fake, scenario)


def analyse(report: Report, fake: FakeTelegram, scenario: Scenario) -> Report:
    sent = sorted(fake.sent(), key=lambda c: c.at)
    counts = Counter((str(c.params["chat_id"]), str(c.params["text"])) for c in sent)
    expected = {(str(CHAT_BASE + k % scenario.residents), f"bench {k}") for k in range(scenario.messages)}
    report.delivered = len(counts.keys() & expected)
    report.lost = len(expected - counts.keys())
    report.duplicated = sum(n - 1 for n in counts.values())
    times = [c.at for c in sent]
    if len(times) > 1:
        report.seconds = round(times[-1] - times[0], 2)
        report.rate = round((len(times) - 1) / (times[-1] - times[0]), 2)
        report.max_window = max_in_window(times, 1.0)
    per_chat: dict[str, list[float]] = defaultdict(list)
    for call in sent:
        per_chat[str(call.params["chat_id"])].append(call.at)
    gaps = [b - a for ts in per_chat.values() for a, b in itertools.pairwise(ts)]
    report.min_chat_gap = round(min(gaps), 3) if gaps else 0.0
    report.max_chat_window = max((max_in_window(ts, 1.0) for ts in per_chat.values()), default=0)
    return report


def verdicts(steady: Report, crash: Report) -> list[tuple[str, str, str]]:
    rate_ok = abs(steady.rate - steady.global_rate) <= 0.05 * steady.global_rate
    return [
        (
            "steady: achieved rate",
            f"{steady.rate:.2f} msg/s over {steady.seconds:.0f} s",
            f"within 5% of {steady.global_rate:.0f} {'✅' if rate_ok else '❌'}",
        ),
        (
            "steady: busiest one-second window (sliding)",
            str(steady.max_window),
            f"<= {steady.global_rate:.0f} {'✅' if steady.max_window <= steady.global_rate else '❌'}",
        ),
        (
            "steady: most messages to one chat in one second",
            f"{steady.max_chat_window} (closest two: {steady.min_chat_gap:.3f} s apart)",
            f"<= 1 {'✅' if steady.max_chat_window <= 1 else '❌'}",
        ),
        (
            "steady: lost / duplicated",
            f"{steady.lost} / {steady.duplicated}",
            f"0 / 0 {'✅' if steady.lost == steady.duplicated == 0 else '❌'}",
        ),
        ("crash: SIGKILLs / rows in flight at each", f"{crash.kills} / {crash.in_flight_at_kills}", ""),
        (
            "crash: first delivery after each restart",
            " s, ".join(str(s) for s in crash.restarts_seconds) + " s",
            "",
        ),
        (
            "crash: lost / duplicated",
            f"{crash.lost} / {crash.duplicated}",
            f"0 / 0 {'✅' if crash.lost == crash.duplicated == 0 else '❌'}",
        ),
        ("crash: busiest one-second window / one chat", f"{crash.max_window} / {crash.max_chat_window}", ""),
    ]


def write_doc(steady: Report, crash: Report, command: str) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    lines = [
        START,
        "## Notifications (`bench/notify_bench.py`)",
        "",
        f"Command: `{command}` — {datetime.now().strftime('%Y-%m-%d %H:%M')}, "
        f"Python {platform.python_version()}, {platform.machine()}, SQLite, {os.cpu_count()} cores "
        f"(load average {load:.1f} at the start). "
        f"{steady.messages:,} notifications to {steady.residents:,} residents through the fake Telegram "
        "Bot API (real HTTP on 127.0.0.1) by a `pontibot run` process; times are the fake server's clock.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        *(f"| {name} | {value} | {target} |" for name, value, target in verdicts(steady, crash)),
        "",
        "The crash run kills the server with SIGKILL at a third and at two thirds of the messages and "
        "starts it again; rows it had claimed wait for their lease (`notifications.claim_lease_seconds`, "
        "30 s) and go out then. Each kill is made while sends are in flight and held at the fake before "
        "Telegram processed them, once every send Telegram had answered is recorded. A kill in the "
        "millisecond between Telegram accepting a message and the `sent` commit would send that message "
        "twice (Telegram takes no idempotency key): `--anywhere` kills without that care and shows it.",
        END,
    ]
    block = "\n".join(lines)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--residents", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--per-chat", type=float, default=1.0)
    parser.add_argument(
        "--anywhere",
        action="store_true",
        help="kill wherever the sends are (no gate): shows the residual window",
    )
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    base = {
        "messages": args.messages,
        "residents": args.residents,
        "global_rate": args.rate,
        "per_chat_rate": args.per_chat,
    }
    steady = asyncio.run(run(Scenario(**base)))
    print(json.dumps(asdict(steady), indent=1))
    crash = asyncio.run(run(Scenario(**base, kills=2, gate=not args.anywhere)))
    print(json.dumps(asdict(crash), indent=1))
    for name, value, target in verdicts(steady, crash):
        print(f"{name:50} {value:40} {target}")
    if not args.no_doc:
        command = "python bench/notify_bench.py" + (
            "" if args.messages == 10_000 else f" --messages {args.messages}"
        )
        write_doc(steady, crash, ".venv/bin/" + command)


if __name__ == "__main__":
    main()
