"""Crash safety: the server delivering the outbox is SIGKILLed twice mid-run and restarted; 0 lost, 0 twice.

The scaled-down version of bench/notify_bench.py: 300 notifications to 60 residents through the fake
Bot API at higher fake limits, ``pontibot run`` as a subprocess on the test's database (PostgreSQL's
SKIP LOCKED path in the PG run). Each kill happens while sends are in flight and held before the fake
Telegram processed them (``gate``), so every one of them must be sent again after its lease — once.
"""

from __future__ import annotations

from pathlib import Path

from bench.notify_bench import Scenario, run
from bot.settings import Settings


async def test_two_sigkills_mid_run_lose_nothing_and_send_nothing_twice(
    settings: Settings, database_url: str
) -> None:
    scenario = Scenario(
        messages=300,
        residents=60,
        global_rate=200,
        per_chat_rate=100,
        kills=2,
        gate=True,
        lease_seconds=2,
        database_url=database_url,
        model_dir=str(Path(settings.nlu.model_dir)),
        timeout=90,
    )

    report = await run(scenario)

    assert (report.delivered, report.lost, report.duplicated) == (300, 0, 0)
    assert report.statuses == {"sent": 300}
    assert len(report.in_flight_at_kills) == 2 and all(n > 0 for n in report.in_flight_at_kills)
