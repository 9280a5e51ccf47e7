"""Acceptance (issue 7): a whole complaint with photo and location over WhatsApp (signed Twilio webhooks).

The resident answers the bot's numbered options ("1"), sends a photo with a caption and shares a
location, as recorded in tests/fixtures/twilio; replies go out to the fake Twilio REST server.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.channels.base import numbered_options
from flows.messages import Button
from flows.texts import Texts
from nlu.entities import COMPLAINT_CATEGORIES
from storage.backend_models import ComplaintRecord
from storage.models import Subscription
from tests.bot.channels.whatsapp.test_channel import (  # noqa: F401 (fixtures and helpers of the WhatsApp suite)
    JPEG,
    WhatsAppResident,
    overrides,
    resident,
    settings_overrides,
)
from tests.conftest import LiveServer
from tests.support.fake_twilio import FakeTwilio

TEXTS = Texts.load()
CAPTION = "jalan berlubang di depan sekolah"  # the Body of tests/fixtures/twilio/media.txt
ADDRESS = "Jl. Tanjungpura No.1, Benua Melayu Darat, Pontianak Selatan"  # tests/fixtures/twilio/location.txt
PIN = (-0.0226903, 109.3447488)
TICKET = re.compile(r"ADU-\d{4}-\d{6}")


def with_options(text: str, buttons: list[Button]) -> str:
    return f"{text}\n\n{numbered_options(buttons, lang='id')}"


async def test_a_whole_complaint_with_photo_and_location(
    resident: WhatsAppResident,  # noqa: F811
    fake_twilio: FakeTwilio,
    live_server: LiveServer,
) -> None:
    categories = [
        Button(
            TEXTS.render("id", f"complaints.category.{category}"),
            f'/file_complaint{{"complaint_category": "{category}"}}',
        )
        for category in COMPLAINT_CATEGORIES
    ]

    [ask_category] = await resident.says("mau lapor")
    assert ask_category.body == with_options(TEXTS.render("id", "complaints.ask_category"), categories)

    [ask_description] = await resident.says("1")  # 1 = road damage
    assert ask_description.body == TEXTS.render("id", "complaints.ask_description")

    photo_url = fake_twilio.add_media(JPEG, "image/jpeg")
    [ask_location] = await resident.says(fixture="media", MediaUrl0=photo_url)
    assert ask_location.body == "\n\n".join(
        [TEXTS.render("id", "complaints.ask_location"), TEXTS.render("id", "whatsapp.share_location")]
    )

    [summary] = await resident.says(fixture="location")
    location = " · ".join(
        [
            ADDRESS,
            TEXTS.render("id", "complaints.location_pin", lat=f"{PIN[0]:.5f}", lon=f"{PIN[1]:.5f}"),
        ]
    )
    actions = [
        Button(TEXTS.render("id", "complaints.button_send"), '/file_complaint{"choice": "send"}'),
        Button(TEXTS.render("id", "complaints.button_edit"), '/file_complaint{"choice": "edit"}'),
        Button(TEXTS.render("id", "complaints.button_cancel"), "/cancel"),
    ]
    assert summary.body == with_options(
        TEXTS.render(
            "id",
            "complaints.summary",
            category=TEXTS.render("id", "complaints.category.road_damage"),
            description=CAPTION,
            location=location,
            photo=TEXTS.render("id", "complaints.summary_photos", count=1),
        ),
        actions,
    )

    [filed] = await resident.says("1")  # 1 = send

    assert filed.body is not None
    ticket = TICKET.search(filed.body)
    assert ticket is not None
    assert filed.body.startswith(TEXTS.render("id", "complaints.filed", ticket=ticket.group(0)))
    async with live_server.runtime.db.session() as session:
        row = (await session.execute(select(ComplaintRecord))).scalar_one()
        followed = (await session.execute(select(Subscription))).scalar_one()
    assert (row.ticket, row.category, row.description, row.address, row.lat, row.lon) == (
        ticket.group(0),
        "road_damage",
        CAPTION,
        ADDRESS,
        *PIN,
    )
    [photo_key] = row.media_keys
    assert live_server.runtime.media.path(photo_key).read_bytes() == JPEG
    assert (followed.topic, followed.ref) == ("complaint", ticket.group(0))
