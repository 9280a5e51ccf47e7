"""Start-up: how long `pontibot run` takes to be ready with a trained model, and how much memory it holds.

Each run starts `pontibot run` as a new process on a migrated SQLite database and an already trained
model (what a restart of a deployment looks like), and measures:

* *listening*: from the spawn until `GET /healthz` answers (the server listens before it is ready);
* *ready*: from the spawn until `GET /readyz` answers 200 (model loaded, database, channels);
* *RSS*: the resident memory of the process once ready (`VmRSS` in /proc), and its peak (`VmHWM`).

Targets (issue 22): ready within 2 s, RSS at most 150 MB. The figures go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from benchdoc import replace_section  # noqa: E402 - bench/ is the script's directory

READY_TARGET_S = 2.0
RSS_TARGET_MB = 150.0
PONTIBOT = [sys.executable, "-m", "bot"]


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status_of(url: str) -> int | None:
    """The HTTP status of ``GET url`` (None while nothing listens)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def memory_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in kB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def prepare(work: Path) -> dict[str, str]:
    """A migrated database and a trained model in ``work``; the environment that points at them."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'pontibot.db'}",
        "PONTIBOT_NLU__MODEL_DIR": str(work / "nlu"),
        "PONTIBOT_SERVER__MEDIA_DIR": str(work / "media"),
        "PYTHONPATH": str(REPO),
    }
    for name in ("TELEGRAM_BOT_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        env.pop(name, None)
    subprocess.run([*PONTIBOT, "db", "upgrade"], env=env, cwd=REPO, check=True, capture_output=True)
    subprocess.run([*PONTIBOT, "nlu", "train"], env=env, cwd=REPO, check=True, capture_output=True)
    return env


def one_start(env: dict[str, str]) -> dict[str, float]:
    """Start the server once; the seconds until it listens and until it is ready, and its memory."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    began = time.monotonic()
    process = subprocess.Popen(
        [*PONTIBOT, "run", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listening = ready = None
    try:
        deadline = began + 120
        while time.monotonic() < deadline and ready is None:
            if process.poll() is not None:
                raise RuntimeError(f"pontibot exited with {process.returncode}")
            if listening is None and status_of(f"{base}/healthz") is not None:
                listening = time.monotonic() - began
            if listening is not None and status_of(f"{base}/readyz") == 200:
                ready = time.monotonic() - began
            time.sleep(0.02)
        if ready is None:
            raise RuntimeError("not ready within 120 s")
        rss, peak = memory_kb(process.pid, "VmRSS"), memory_kb(process.pid, "VmHWM")
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"listening": listening or 0.0, "ready": ready, "rss_mb": rss / 1024, "peak_mb": peak / 1024}


def verdict(met: bool) -> str:
    """How a target reads in the table."""
    return "met" if met else "not met"


def section(runs: list[dict[str, float]]) -> str:
    """The markdown of the figures."""
    ready = statistics.median(r["ready"] for r in runs)
    rss = statistics.median(r["rss_mb"] for r in runs)
    rows = "\n".join(
        f"| {i} | {r['listening']:.2f} | {r['ready']:.2f} | {r['rss_mb']:.0f} | {r['peak_mb']:.0f} |"
        for i, r in enumerate(runs, start=1)
    )
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return f"""## Start-up (`bench/startup_bench.py`)

Command: `.venv/bin/python bench/startup_bench.py --runs {len(runs)}` — {stamp},
Python {platform.python_version()}, {os.cpu_count()} cores. `pontibot run` on a migrated SQLite database with
a trained model (a restart), one worker, no Telegram/WhatsApp, after one start that is not counted (it
compiles the bytecode); seconds from the spawn until `/healthz` answers (listening) and until `/readyz`
answers 200 (ready); memory of the process once ready.

| run | listening (s) | ready (s) | RSS (MB) | peak RSS (MB) |
|---|---|---|---|---|
{rows}

- Ready within {READY_TARGET_S:g} s: median {ready:.2f} s: **{verdict(ready <= READY_TARGET_S)}**
- RSS at most {RSS_TARGET_MB:g} MB: median {rss:.0f} MB: **{verdict(rss <= RSS_TARGET_MB)}**
"""


def main() -> None:
    """Measure ``--runs`` starts, print and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pontibot-startup-"))
    try:
        env = prepare(work)
        one_start(env)  # the first start compiles bytecode and warms the file cache: not counted
        runs = [one_start(env) for _ in range(args.runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = section(runs)
    print(text)
    if not args.no_write:
        replace_section("startup", text)


if __name__ == "__main__":
    main()
