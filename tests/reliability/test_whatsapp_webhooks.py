"""WhatsApp (Twilio) webhooks under stress: replays, a stalled back end, forged signatures.

Every request is signed with Twilio's algorithm for the public URL in ``twilio.webhook_url`` and
delivered to the app's real 127.0.0.1 address (as through a reverse proxy); replies go to the fake
Twilio REST server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import time
from typing import Any

import pytest

from storage.models import Message, ProcessedMessage, Resident
from tests.conftest import LiveServer
from tests.reliability.conftest import StallingParser, count
from tests.support import eventually, settle
from tests.support.fake_twilio import SANDBOX_FROM, FakeTwilio, load_webhook, post_signed

PUBLIC = "https://pontibot.example"
WEBHOOK = f"{PUBLIC}/webhooks/whatsapp"
RESIDENT = "whatsapp:+6281234567890"


@pytest.fixture
def settings_overrides(fake_twilio: FakeTwilio) -> dict[str, Any]:
    return dict(
        environ={"TWILIO_ACCOUNT_SID": fake_twilio.account_sid, "TWILIO_AUTH_TOKEN": fake_twilio.auth_token},
        twilio={
            "whatsapp_from": SANDBOX_FROM,
            "api_base_url": fake_twilio.base_url,
            "webhook_url": WEBHOOK,
            "messages_per_second": 500,
            "retry_backoff_seconds": 0.01,
            "timeout": 5,
        },
    )


def signed(fake: FakeTwilio, sid: str, body: str = "halo") -> tuple[list[tuple[str, str]], str]:
    params = load_webhook("text", twilio_url=fake.base_url, MessageSid=sid, Body=body, From=RESIDENT)
    return params, fake.sign(WEBHOOK, params)


async def test_one_webhook_replayed_100_times_has_one_effect(
    live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    params, signature = signed(fake_twilio, "SM" + "a" * 32)

    responses = []
    for _ in range(10):
        responses += await asyncio.gather(
            *(
                post_signed(
                    WEBHOOK, params, signature=signature, via=live_server.url, client=live_server.client
                )
                for _ in range(10)
            )
        )
    await settle(live_server.runtime)

    assert [r.status_code for r in responses] == [200] * 100
    assert len(fake_twilio.sent(RESIDENT)) == 1
    assert await count(live_server.runtime, ProcessedMessage) == 1
    assert await count(live_server.runtime, Resident) == 1


async def test_a_stalled_back_end_does_not_delay_the_acknowledgement(
    live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    rt = live_server.runtime
    stalling = StallingParser(rt.dispatcher.parser, stall=20.0)
    rt.dispatcher.parser = stalling
    params, signature = signed(fake_twilio, "SM" + "b" * 32)

    started = time.monotonic()
    response = await post_signed(
        WEBHOOK, params, signature=signature, via=live_server.url, client=live_server.client
    )
    acknowledged = time.monotonic() - started

    assert response.status_code == 200
    assert acknowledged < 2.0
    await eventually(lambda: stalling.calls)
    assert fake_twilio.sent(RESIDENT) == []
    stalling.release()
    await settle(rt)
    assert len(fake_twilio.sent(RESIDENT)) == 1


def _forged_signatures(fake: FakeTwilio, params: list[tuple[str, str]]) -> list[str | None]:
    rng = random.Random(27)
    right = fake.sign(WEBHOOK, params)
    forged: list[str | None] = [None, "", right[:-2] + "==", right.lower()]
    forged.append(fake.sign(f"{PUBLIC}/webhooks/whatsapp/status", params))  # signed for another URL
    forged.append(fake.sign(WEBHOOK, [*params, ("Extra", "1")]))  # signed for other parameters
    forged.append(fake.sign(WEBHOOK.replace("https", "http"), params))
    wrong_key = hmac.new(b"not-the-auth-token", WEBHOOK.encode(), hashlib.sha1).digest()
    forged.append(base64.b64encode(wrong_key).decode())
    while len(forged) < 100:
        forged.append(base64.b64encode(rng.randbytes(20)).decode())
    assert right not in forged
    return forged


async def test_100_forged_signatures_are_refused_and_nothing_is_stored(
    live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    statuses = []
    for index, _ in enumerate(range(100)):
        params, _right = signed(fake_twilio, f"SM{index:032x}", body=f"pesan palsu {index}")
        signature = _forged_signatures(fake_twilio, params)[index]
        response = await post_signed(
            WEBHOOK, params, signature=signature, via=live_server.url, client=live_server.client
        )
        statuses.append(response.status_code)
    await settle(live_server.runtime)

    assert statuses == [403] * 100
    rt = live_server.runtime
    assert (await count(rt, Message), await count(rt, ProcessedMessage), await count(rt, Resident)) == (
        0,
        0,
        0,
    )
    assert fake_twilio.sent() == []
