"""WhatsApp end to end: signed Twilio webhooks into the real app over HTTP, replies out to a fake Twilio.

Every inbound request is signed with twilio's own RequestValidator algorithm for the public URL in
``twilio.webhook_url`` and delivered to the app's real 127.0.0.1 address, as through a reverse proxy.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.datastructures import ImmutableMultiDict

from bot.channels.base import numbered_options
from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.channels.whatsapp.inbound import parse_inbound
from bot.channels.whatsapp.render import render_reply
from bot.channels.whatsapp.twilio import SendFailed, TemplateRequired
from bot.runtime import Runtime
from bot.settings import Settings
from flows.messages import Button, Channel, Reply
from flows.texts import Texts
from storage import repositories as repo
from storage.models import Message, OutboxMessage, ProcessedMessage, Resident
from tests.conftest import LiveServer
from tests.support import settle
from tests.support.fake_twilio import (
    SANDBOX_FROM,
    FakeTwilio,
    SentMessage,
    load_webhook,
    post_signed,
)

TEXTS = Texts.load()
PUBLIC = "https://pontibot.example"
WEBHOOK = f"{PUBLIC}/webhooks/whatsapp"
STATUS_WEBHOOK = f"{WEBHOOK}/status"
RESIDENT = "whatsapp:+6281234567890"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
PERMIT_TEMPLATE = "HX" + "a1" * 16
QUICK_REPLY_2 = "HX" + "b2" * 16
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(range(256)) * 4
_sids = itertools.count(1)


def new_sid(prefix: str = "SM") -> str:
    return f"{prefix}{next(_sids):032x}"


@pytest.fixture
def overrides() -> dict[str, dict[str, Any]]:
    """Per-test settings changes (parametrize ``overrides`` to use)."""
    return {}


@pytest.fixture
def settings_overrides(fake_twilio: FakeTwilio, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Twilio on (the fake's account and URL, the sandbox number, fast retries), plus ``overrides``."""
    twilio = {
        "whatsapp_from": SANDBOX_FROM,
        "api_base_url": fake_twilio.base_url,
        "webhook_url": WEBHOOK,
        "templates": {"permit_update": PERMIT_TEMPLATE},
        "messages_per_second": 500,
        "retry_backoff_seconds": 0.01,
        "timeout": 5,
        **overrides.get("twilio", {}),
    }
    return {
        "environ": {
            "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
            "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
        },
        "server": overrides.get("server", {}),
        "twilio": twilio,
    }


def whatsapp(rt: Runtime) -> WhatsAppChannel:
    channel = rt.channels[Channel.WHATSAPP]
    assert isinstance(channel, WhatsAppChannel)
    return channel


@dataclass
class WhatsAppResident:
    """A resident on WhatsApp: each ``says`` is one signed Twilio webhook; returns what the bot sent."""

    server: LiveServer
    fake: FakeTwilio
    chat: str = RESIDENT
    signed_for: str = WEBHOOK
    last_params: list[tuple[str, str]] = field(default_factory=list)

    async def post(self, params: list[tuple[str, str]]) -> Any:
        return await post_signed(
            self.signed_for,
            params,
            signature=self.fake.sign(self.signed_for, params),
            via=self.server.url,
            client=self.server.client,
        )

    async def says(
        self, body: str | None = None, *, fixture: str = "text", **fields: str
    ) -> list[SentMessage]:
        before = len(self.fake.sent(self.chat))
        fields.setdefault("MessageSid", new_sid("MM" if fixture in ("media", "voice_note") else "SM"))
        if body is not None:
            fields["Body"] = body
        self.last_params = load_webhook(fixture, twilio_url=self.fake.base_url, **fields)
        response = await self.post(self.last_params)
        assert response.status_code == 200, response.text
        assert response.text == TWIML
        assert response.headers["content-type"].startswith("text/xml")
        await settle(self.server.runtime)
        return self.fake.sent(self.chat)[before:]


@pytest.fixture
def resident(live_server: LiveServer, fake_twilio: FakeTwilio) -> WhatsAppResident:
    return WhatsAppResident(live_server, fake_twilio)


async def inbound_rows(rt: Runtime) -> list[Message]:
    async with rt.db.session() as session:
        rows = await session.execute(select(Message).where(Message.direction == "in").order_by(Message.id))
        return list(rows.scalars())


async def last_turn_replies(rt: Runtime) -> list[Reply]:
    """The replies the dispatcher stored for the latest inbound message."""
    async with rt.db.session() as session:
        last_in = (
            await session.execute(select(func.max(Message.id)).where(Message.direction == "in"))
        ).scalar_one()
        rows = await session.execute(
            select(Message).where(Message.direction == "out", Message.id > last_in).order_by(Message.id)
        )
        return [Reply.from_dict(row.data) for row in rows.scalars()]


def bodies(sent: list[SentMessage]) -> list[str | None]:
    return [m.body for m in sent]


def expected_bodies(replies: list[Reply], lang: str = "id") -> list[str | None]:
    rendered = [render_reply(r, lang=lang, texts=TEXTS, templates={})[0] for r in replies]
    return [m.body for messages in rendered for m in messages]


# --- a conversation -------------------------------------------------------------------------


async def test_halo_then_2_picks_the_second_menu_option(
    resident: WhatsAppResident, live_server: LiveServer
) -> None:
    rt = live_server.runtime

    [menu] = await resident.says("halo")
    menu_replies = await last_turn_replies(rt)
    [second] = await resident.says("2")
    chosen_replies = await last_turn_replies(rt)

    menu_buttons = menu_replies[-1].buttons
    assert menu.to == RESIDENT and menu.get("From") == SANDBOX_FROM
    assert menu.body is not None and menu.body.endswith(numbered_options(menu_buttons, lang="id"))
    assert "Balas 1, 2, 3, 4, 5 atau 6." in menu.body
    halo, two = await inbound_rows(rt)
    assert (halo.text, halo.payload, halo.intent) == ("halo", None, "greet")
    assert (two.text, two.payload) == (menu_buttons[1].title, menu_buttons[1].payload)
    assert (two.intent, two.confidence) == ("permit_status", 1.0)
    assert [second.body] == expected_bodies(chosen_replies)
    async with rt.db.session() as session:
        person = (await session.execute(select(Resident))).scalar_one()
    assert (person.channel, person.external_id, person.display_name) == ("whatsapp", RESIDENT, "Budi Santoso")
    assert person.last_inbound_at is not None


async def test_a_numbered_choice_round_trip_changes_the_language(resident: WhatsAppResident) -> None:
    [question] = await resident.says("bahasa")
    [answer] = await resident.says("2")

    assert question.body == "\n\n".join(
        [
            TEXTS.render("id", "language.ask"),
            numbered_options(
                [
                    Button(TEXTS.render("id", "language.button_id"), '/change_language{"language": "id"}'),
                    Button(TEXTS.render("id", "language.button_en"), '/change_language{"language": "en"}'),
                ],
                lang="id",
            ),
        ]
    )
    assert answer.body == TEXTS.render("en", "language.changed")


async def test_numbered_options_survive_a_restart_and_another_worker(
    resident: WhatsAppResident, live_server: LiveServer, settings: Settings
) -> None:
    rt = live_server.runtime
    await resident.says("bahasa")
    other_worker = WhatsAppChannel(
        settings, db=rt.db, media=rt.media, texts=rt.texts, handle=rt.dispatcher.handle, spawn=rt.spawn
    )

    inbound = parse_inbound(ImmutableMultiDict(load_webhook("text", Body="2", MessageSid=new_sid())))
    msg, notes = await other_worker.to_message(inbound)

    assert notes == []
    assert msg is not None and msg.payload == '/change_language{"language": "en"}'
    assert msg.text == TEXTS.render("id", "language.button_en")
    await other_worker.stop()


async def test_a_reply_without_options_forgets_the_numbers(
    resident: WhatsAppResident, live_server: LiveServer
) -> None:
    await resident.says("bahasa")
    await resident.says("terima kasih")
    await resident.says("2")

    *_, two = await inbound_rows(live_server.runtime)
    assert (two.text, two.payload) == ("2", None)


@pytest.mark.parametrize("overrides", [{"twilio": {"templates": {"quick_reply_2": QUICK_REPLY_2}}}])
async def test_quick_reply_template_round_trip(resident: WhatsAppResident) -> None:
    [question] = await resident.says("bahasa")
    variables = question.content_variables
    assert question.content_sid == QUICK_REPLY_2 and question.body is None
    assert variables == {
        "1": TEXTS.render("id", "language.ask"),
        "2": TEXTS.render("id", "language.button_id"),
        "3": '/change_language{"language": "id"}',
        "4": TEXTS.render("id", "language.button_en"),
        "5": '/change_language{"language": "en"}',
    }

    [answer] = await resident.says(
        fixture="button_reply", ButtonText=variables["4"], ButtonPayload=variables["5"], Body=variables["4"]
    )

    assert answer.body == TEXTS.render("en", "language.changed")


# --- photos, locations and other media ------------------------------------------------------


async def test_photo_and_location_reach_the_dispatcher_with_the_photo_stored(
    resident: WhatsAppResident, live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    rt = live_server.runtime
    photo_url = fake_twilio.add_media(JPEG, "image/jpeg")

    photo_replies = await resident.says(fixture="media", MediaUrl0=photo_url)
    location_replies = await resident.says(fixture="location")

    photo, place = await inbound_rows(rt)
    [stored] = photo.data["media"]
    assert photo.data["kind"] == "photo" and photo.text == "jalan berlubang di depan sekolah"
    assert stored["content_type"] == "image/jpeg"
    assert rt.media.path(stored["key"]).read_bytes() == JPEG
    assert place.data["kind"] == "location"
    assert place.data["location"] == {"lat": -0.0226903, "lon": 109.3447488}
    assert photo_replies and location_replies
    first, cdn = fake_twilio.media_requests
    assert (first.authorized, first.status) == (True, 307)
    assert (cdn.had_auth_header, cdn.status) == (False, 200)


@pytest.mark.parametrize("overrides", [{"server": {"media_max_bytes": 2048}}])
async def test_a_photo_over_the_limit_or_off_twilio_gets_a_helpful_note(
    resident: WhatsAppResident, live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    too_big = fake_twilio.add_media(JPEG + bytes(5000), "image/jpeg")
    note = TEXTS.render("id", "whatsapp.media_rejected", max_mb=1)

    big = await resident.says(fixture="media", MediaUrl0=too_big)
    elsewhere = await resident.says(fixture="media", MediaUrl0="https://files.example/photo.jpg", Body="")

    assert big[0].body == note and len(big) == 2  # the note, then the answer to the caption
    assert bodies(elsewhere) == [note]
    [with_caption] = await inbound_rows(live_server.runtime)
    assert "media" not in with_caption.data and with_caption.data["kind"] == "text"
    download, cdn = fake_twilio.media_requests  # the off-Twilio URL was never fetched
    assert download.path == too_big.removeprefix(fake_twilio.base_url) and cdn.path.startswith("/cdn/")
    assert list((live_server.runtime.media.root).rglob("*.jpg")) == []


async def test_a_voice_note_gets_the_unsupported_content_answer(
    resident: WhatsAppResident, live_server: LiveServer
) -> None:
    [answer] = await resident.says(fixture="voice_note")

    [voice] = await inbound_rows(live_server.runtime)
    assert voice.data["kind"] == "voice"
    assert answer.body == TEXTS.render("id", "unsupported_content")


# --- verification, retries and bad input ---------------------------------------------------


FORGERIES = [
    pytest.param("wrong-token", id="signed-with-another-token"),
    pytest.param("wrong-url", id="signed-for-another-url"),
    pytest.param("tampered", id="body-changed-after-signing"),
    pytest.param("missing", id="no-signature"),
]


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_a_forged_or_missing_signature_is_refused_and_nothing_stored(
    live_server: LiveServer, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture, forgery: str
) -> None:
    params = load_webhook("text", Body="rahasia 3171234567890123")
    signature: str | None = fake_twilio.sign(WEBHOOK, params)
    if forgery == "wrong-token":
        signature = FakeTwilio(auth_token="another-auth-token-0123456789abc").sign(WEBHOOK, params)
    elif forgery == "wrong-url":
        signature = fake_twilio.sign(f"{live_server.url}/webhooks/whatsapp", params)
    elif forgery == "tampered":
        params = [(k, "batal" if k == "Body" else v) for k, v in params]
    elif forgery == "missing":
        signature = None

    with caplog.at_level(logging.WARNING):
        response = await post_signed(
            WEBHOOK, params, signature=signature, via=live_server.url, client=live_server.client
        )
        status = await post_signed(
            STATUS_WEBHOOK, load_webhook("status_delivered"), signature=signature, via=live_server.url
        )
    await settle(live_server.runtime)

    assert response.status_code == status.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert fake_twilio.attempts == []
    async with live_server.runtime.db.session() as session:
        for table in (Message, ProcessedMessage, Resident):
            assert (await session.execute(select(func.count()).select_from(table))).scalar_one() == 0
    refusals = [r.getMessage() for r in caplog.records if "whatsapp webhook refused" in r.getMessage()]
    assert len(refusals) == 2
    assert all("rahasia" not in line and "3171234567890123" not in line for line in caplog.messages)


@pytest.mark.parametrize("overrides", [{"twilio": {"webhook_url": None}}])
async def test_without_webhook_url_the_request_url_is_checked_after_a_startup_warning(
    live_server: LiveServer, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    direct = WhatsAppResident(live_server, fake_twilio, signed_for=f"{live_server.url}/webhooks/whatsapp")
    public = load_webhook("text", MessageSid=new_sid())

    replies = await direct.says("halo")
    refused = await post_signed(
        WEBHOOK,
        public,
        signature=fake_twilio.sign(WEBHOOK, public),
        via=live_server.url,
        client=live_server.client,
    )

    assert len(replies) == 1
    assert refused.status_code == 403
    assert any("twilio.webhook_url is not set" in r.getMessage() for r in caplog.get_records("setup"))


async def test_a_repeated_message_sid_is_answered_once(
    resident: WhatsAppResident, live_server: LiveServer
) -> None:
    params = load_webhook("text", MessageSid=new_sid())

    first = await resident.post(params)
    again, once_more = await asyncio.gather(resident.post(params), resident.post(params))
    await settle(live_server.runtime)

    assert first.status_code == again.status_code == once_more.status_code == 200
    assert len(resident.fake.sent(RESIDENT)) == 1
    assert len(await inbound_rows(live_server.runtime)) == 1


BAD_WEBHOOKS = [
    pytest.param({"From": ""}, 400, id="missing-from"),
    pytest.param({"From": "+6281234567890"}, 400, id="sms-not-whatsapp"),
    pytest.param({"MessageSid": "", "SmsMessageSid": ""}, 400, id="missing-message-sid"),
    pytest.param({"Latitude": "north", "Longitude": "109.3"}, 400, id="latitude-not-a-number"),
    pytest.param({"Latitude": "-91", "Longitude": "109.3"}, 400, id="latitude-out-of-range"),
    pytest.param({"Latitude": "-0.02"}, 400, id="latitude-without-longitude"),
    pytest.param({"NumMedia": "many"}, 400, id="num-media-not-a-number"),
]


@pytest.mark.parametrize(("fields", "status"), BAD_WEBHOOKS)
async def test_bad_webhooks_get_a_4xx_and_store_nothing(
    resident: WhatsAppResident, live_server: LiveServer, fields: dict[str, str], status: int
) -> None:
    params = load_webhook("text", **{"MessageSid": new_sid(), **fields})

    response = await resident.post(params)
    await settle(live_server.runtime)

    assert response.status_code == status
    assert response.json()["error"]["message"]
    assert await inbound_rows(live_server.runtime) == []


async def test_unreadable_wrong_type_and_oversized_bodies(
    live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    signature = fake_twilio.sign(WEBHOOK, {})
    client = live_server.client
    path = "/webhooks/whatsapp"
    form = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}

    not_utf8 = await client.post(path, content=b"Body=%ff%fe&From=x", headers=form)
    as_json = await client.post(path, json={"Body": "halo"}, headers={"X-Twilio-Signature": signature})
    huge = await client.post(path, content=b"Body=" + b"a" * 2_000_000, headers=form)

    assert (not_utf8.status_code, as_json.status_code, huge.status_code) == (400, 415, 413)


async def test_unknown_fields_are_ignored_and_long_messages_answered(resident: WhatsAppResident) -> None:
    unknown = await resident.says("halo", ChannelMetadata='{"type":"whatsapp"}', SomethingNew="1")
    ten_thousand = await resident.says("jalan rusak " * 833 + "abcd")
    too_long = await resident.says("a" * 10_001)

    assert len(unknown) == 1 and len(ten_thousand) >= 1
    assert bodies(too_long) == [TEXTS.render("id", "error.too_long", limit=10_000)]


# --- sending: limits, the 24-hour window, status callbacks -----------------------------------


async def test_429_and_20429_are_retried_then_given_up(
    live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    channel = whatsapp(live_server.runtime)
    fake_twilio.fail_next(status=429, code=20429, times=2)

    sids = await channel.send(RESIDENT, [Reply("Baik, Kak.")])

    assert [a.error_code for a in fake_twilio.attempts] == [20429, 20429, None]
    assert sids == [fake_twilio.sent()[0].sid]
    fake_twilio.fail_next(status=429, code=20429, times=10)
    with pytest.raises(SendFailed) as refused:
        await channel.send(RESIDENT, [Reply("Baik, Kak.")])
    assert (refused.value.code, refused.value.retryable) == (20429, True)
    assert len(fake_twilio.attempts) == 3 + 4  # max_retries 3: four attempts


async def test_long_text_is_split_at_twilio_limit(live_server: LiveServer, fake_twilio: FakeTwilio) -> None:
    text = "\n\n".join(f"Paragraf {i}: " + " ".join(["syarat dokumen"] * 40) for i in range(8))

    sids = await whatsapp(live_server.runtime).send(RESIDENT, [Reply(text)])

    sent = fake_twilio.sent()
    assert len(sids) == len(sent) > 1
    assert all(len(m.body or "") <= 1600 for m in sent)
    assert "\n\n".join(m.body or "" for m in sent) == text


async def test_notifications_inside_and_outside_the_24_hour_window(
    live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    channel = whatsapp(live_server.runtime)
    now = datetime.now(UTC)
    reply = Reply("Izin PBG-2026-00123 Kakak sudah terbit. 🎉")
    variables = {"1": "PBG-2026-00123", "2": "terbit"}

    inside = await channel.send_notification(
        RESIDENT,
        reply,
        template_key="permit_update",
        variables=variables,
        last_inbound_at=now - timedelta(hours=23),
    )
    outside = await channel.send_notification(
        RESIDENT,
        reply,
        template_key="permit_update",
        variables=variables,
        last_inbound_at=now - timedelta(hours=25),
    )
    never = await channel.send_notification(
        RESIDENT, reply, template_key="permit_update", variables=variables, last_inbound_at=None
    )

    free_form, template, template_again = fake_twilio.sent()
    assert [inside, outside, never] == [[free_form.sid], [template.sid], [template_again.sid]]
    assert (free_form.body, free_form.content_sid) == (reply.text, None)
    assert (template.body, template.content_sid, template.content_variables) == (
        None,
        PERMIT_TEMPLATE,
        variables,
    )
    assert free_form.status_callback == template.status_callback == STATUS_WEBHOOK
    with pytest.raises(TemplateRequired, match=r"twilio\.templates\.complaint_update"):
        await channel.send_notification(
            RESIDENT,
            reply,
            template_key="complaint_update",
            variables={},
            last_inbound_at=now - timedelta(days=3),
        )


async def test_error_63016_on_free_form_falls_back_to_the_template(
    live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    channel = whatsapp(live_server.runtime)
    fake_twilio.close_window(RESIDENT)

    sids = await channel.send_notification(
        RESIDENT,
        Reply("Izin Kakak sudah terbit."),
        template_key="permit_update",
        variables={"1": "PBG-2026-00123"},
        last_inbound_at=datetime.now(UTC) - timedelta(hours=1),
    )

    refused, template = fake_twilio.attempts
    assert (refused.error_code, refused.body) == (63016, "Izin Kakak sudah terbit.")
    assert sids == [template.sid] and template.content_sid == PERMIT_TEMPLATE


async def test_status_callbacks_move_outbox_rows_forward_only(
    live_server: LiveServer, fake_twilio: FakeTwilio
) -> None:
    rt = live_server.runtime
    channel = whatsapp(rt)
    later = datetime.now(UTC) - timedelta(days=2)
    [first] = await channel.send_notification(
        RESIDENT, Reply("a"), template_key="permit_update", variables={}, last_inbound_at=later
    )
    [second] = await channel.send_notification(
        RESIDENT, Reply("b"), template_key="permit_update", variables={}, last_inbound_at=later
    )
    async with rt.db.session() as session:
        person = await repo.get_or_create_resident(session, channel="whatsapp", external_id=RESIDENT)
        for n, sid in enumerate((first, second)):
            await repo.enqueue_outbox(
                session, resident=person, kind="notification", body={}, idempotency_key=f"k{n}"
            )
            row = (
                await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == f"k{n}"))
            ).scalar_one()
            row.provider_message_id = sid

    async def status_of(sid: str) -> tuple[str | None, str | None]:
        async with rt.db.session() as session:
            row = (
                await session.execute(select(OutboxMessage).where(OutboxMessage.provider_message_id == sid))
            ).scalar_one()
            return row.delivery_status, row.last_error

    seen = []
    for status in ("queued", "sent", "read", "delivered", "failed"):
        response = await fake_twilio.send_status(
            first, status, via=live_server.url, client=live_server.client
        )
        assert response.status_code == 200 and response.text == TWIML
        seen.append((await status_of(first))[0])
    failed = await fake_twilio.send_status(second, "failed", via=live_server.url, error_code=63016)
    unknown = await post_signed(
        STATUS_WEBHOOK,
        params := load_webhook("status_delivered", MessageSid=new_sid()),
        signature=fake_twilio.sign(STATUS_WEBHOOK, params),
        via=live_server.url,
    )

    assert seen == ["queued", "sent", "read", "read", "read"]
    assert failed.status_code == 200
    delivery, error = await status_of(second)
    assert delivery == "failed" and error is not None and error.startswith("twilio 63016")
    assert unknown.status_code == 200


async def test_the_limiter_is_one_instance_at_the_configured_rate(live_server: LiveServer) -> None:
    channel = whatsapp(live_server.runtime)

    assert channel.limiter.global_bucket.rate == 500
    assert channel.limiter is whatsapp(live_server.runtime).limiter
