"""The ``pontibot`` command in a subprocess, with the test's environment instead of the host's settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import free_port
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # a cold process imports the NLU and SQLAlchemy; the CI machine is shared


def cli_env(*, database_url: str = "", nlu_model_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """The host environment without pontibot's settings or secrets, plus this test's database and model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PONTIBOT_", "TELEGRAM_", "TWILIO_"))}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["PONTIBOT_DATABASE__URL"] = database_url
    if nlu_model_dir is not None:
        env["PONTIBOT_NLU__MODEL_DIR"] = str(nlu_model_dir)
    return env | extra


def pontibot(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``pontibot ARGS`` to completion; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
        check=False,
    )


@dataclass
class Running:
    """A ``pontibot`` process serving HTTP on ``port``, logging to ``log``."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    group: bool = False  # the process leads a process group of its own (a supervisor and its workers)

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """Everything it logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM (to the whole process group when it has one of its own), then reap it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            if self.group:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
            self.process.wait()


def start_pontibot(*args: str, env: dict[str, str], log: Path, port: int, group: bool = False) -> Running:
    """Start ``pontibot ARGS`` (serving on ``port``) in the background; not waited for."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=REPO,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=group,
        )
    return Running(port, process, log, group)


async def until_healthy(running: Running, timeout: float = START_TIMEOUT) -> httpx.Response:
    """Poll until the server is ready (``/readyz`` 200: model, database and channels up), then return
    its ``/healthz`` answer; fail at once if the process exits."""
    async with httpx.AsyncClient(timeout=2) as client:

        async def ready() -> httpx.Response | None:
            if running.process.poll() is not None:
                code = running.process.returncode
                raise AssertionError(f"pontibot exited with {code}:\n{running.output()}")
            try:
                answer = await client.get(f"{running.url}/readyz")
                if answer.status_code != 200:
                    return None
                return await client.get(f"{running.url}/healthz")
            except httpx.TransportError:
                return None

        response: httpx.Response = await eventually(
            ready, timeout=timeout, interval=0.1, what=f"pontibot on {running.port} is ready (/readyz)"
        )
        return response


@asynccontextmanager
async def pontibot_serving(
    *args: str, env: dict[str, str], log: Path, port: int | None = None
) -> AsyncIterator[tuple[Running, httpx.Response]]:
    """``pontibot ARGS --port PORT`` started, healthy (with its /healthz answer), stopped afterwards."""
    port = port or free_port()
    running = start_pontibot(*args, "--port", str(port), env=env, log=log, port=port)
    try:
        yield running, await until_healthy(running)
    finally:
        running.stop()
