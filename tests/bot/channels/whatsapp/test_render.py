"""WhatsApp without a server: Twilio's fields in, Twilio's message parameters out, status ordering."""

from __future__ import annotations

import pytest
from starlette.datastructures import ImmutableMultiDict

from bot.channels.base import numbered_options
from bot.channels.whatsapp.inbound import BadWebhook, DeliveryUpdate, parse_inbound, parse_status
from bot.channels.whatsapp.render import OutboundMessage, render_reply
from bot.channels.whatsapp.rest import TwilioRestClient
from flows.messages import Button, Location, Reply, Venue
from flows.texts import Texts
from storage.whatsapp_repository import delivery_moves_forward
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, load_webhook

TEXTS = Texts.load()
LANGUAGES = (Button("🇮🇩 Bahasa Indonesia", "/lang_id"), Button("🇬🇧 English", "/lang_en"))
QUICK_2 = "HX" + "c3" * 16


def form(name: str, **fields: str) -> ImmutableMultiDict[str, str]:
    return ImmutableMultiDict(load_webhook(name, twilio_url="https://api.twilio.com", **fields))


def test_a_text_webhook() -> None:
    inbound = parse_inbound(form("text"))

    assert (inbound.chat_id, inbound.user_id, inbound.body) == (
        "whatsapp:+6281234567890",
        "6281234567890",
        "halo",
    )
    assert (inbound.message_sid, inbound.profile_name) == (
        "SM6f2b8c8a3f8e4c1b9d0a7e5c4b3a2918",
        "Budi Santoso",
    )
    assert (inbound.location, inbound.media, inbound.button_payload) == (None, (), None)


def test_a_button_location_and_media_webhook() -> None:
    button = parse_inbound(form("button_reply"))
    place = parse_inbound(form("location"))
    photo = parse_inbound(form("media"))

    assert (button.button_payload, button.button_text) == ('/change_language{"language": "en"}', "🇬🇧 English")
    assert place.location == Location(
        -0.0226903,
        109.3447488,
        address="Jl. Tanjungpura No.1, Benua Melayu Darat, Pontianak Selatan",
        label="Simpang Tanjungpura",
    )
    [media] = photo.media
    assert media.content_type == "image/jpeg" and media.url.startswith("https://api.twilio.com/2010-04-01/")


@pytest.mark.parametrize(
    "fields",
    [{"From": ""}, {"From": "+628123"}, {"Longitude": "nan", "Latitude": "1"}, {"NumMedia": "-1"}],
)
def test_unusable_webhooks(fields: dict[str, str]) -> None:
    with pytest.raises(BadWebhook):
        parse_inbound(form("text", **fields))


def test_status_callbacks() -> None:
    assert parse_status(form("status_read")) == DeliveryUpdate("SM00000000000000000000000000000abc", "read")
    failed = parse_status(form("status_failed"))
    assert (
        failed.status == "failed" and failed.error is not None and failed.error.startswith("twilio 63016: ")
    )
    assert parse_status(form("status_sent", MessageStatus="sending")).status == "queued"
    assert parse_status(form("status_sent", MessageStatus="receiving")).status is None


@pytest.mark.parametrize(
    ("current", "new", "moves"),
    [
        (None, "queued", True),
        ("queued", "sent", True),
        ("sent", "delivered", True),
        ("delivered", "read", True),
        ("read", "delivered", False),
        ("delivered", "sent", False),
        ("sent", "failed", True),
        ("queued", "undelivered", True),
        ("delivered", "failed", False),
        ("failed", "delivered", False),
        ("read", "read", False),
    ],
)
def test_delivery_status_only_moves_forward(current: str | None, new: str, moves: bool) -> None:
    assert delivery_moves_forward(current, new) is moves


def test_buttons_become_numbered_lines_without_a_template() -> None:
    messages, shown = render_reply(Reply("Pilih bahasa:", LANGUAGES), lang="id", texts=TEXTS, templates={})

    assert messages == [OutboundMessage(body="Pilih bahasa:\n\n" + numbered_options(LANGUAGES, lang="id"))]
    assert messages[0].body is not None and messages[0].body.endswith("Balas 1 atau 2.")
    assert shown == LANGUAGES


def test_buttons_become_a_quick_reply_when_its_template_is_configured() -> None:
    [message], shown = render_reply(
        Reply("Pilih bahasa:", LANGUAGES), lang="id", texts=TEXTS, templates={"quick_reply_2": QUICK_2}
    )

    assert shown == ()
    assert message.params() == {
        "content_sid": QUICK_2,
        "content_variables": (
            '{"1": "Pilih bahasa:", "2": "🇮🇩 Bahasa Indonesia", "3": "/lang_id", '
            '"4": "🇬🇧 English", "5": "/lang_en"}'
        ),
    }


@pytest.mark.parametrize(
    "buttons",
    [
        tuple(Button(f"Pilihan {i}", f"/p{i}") for i in range(4)),  # WhatsApp: three in session
        (Button("Judul yang jauh lebih panjang dari dua puluh", "/x"), Button("B", "/b")),
    ],
)
def test_quick_replies_that_do_not_fit_fall_back_to_numbers(buttons: tuple[Button, ...]) -> None:
    templates = {f"quick_reply_{n}": QUICK_2 for n in range(1, 5)}

    [message], shown = render_reply(Reply("Pilih:", buttons), lang="en", texts=TEXTS, templates=templates)

    assert message.content_sid is None and shown == buttons
    assert message.body is not None and message.body.endswith(numbered_options(buttons, lang="en"))


def test_a_venue_becomes_a_map_link_and_a_location_request_a_hint() -> None:
    venue = Venue(-0.0307, 109.3332, "Disdukcapil Kota Pontianak", "Jl. Jend. Sudirman No.1")

    [message], _ = render_reply(
        Reply("Kantornya di sini, Kak:", venue=venue, request_location=True),
        lang="id",
        texts=TEXTS,
        templates={},
    )

    assert message.body == "\n\n".join(
        [
            "Kantornya di sini, Kak:",
            TEXTS.render(
                "id",
                "whatsapp.venue",
                title=venue.title,
                address=venue.address,
                map_url="https://maps.google.com/?q=-0.030700,109.333200",
            ),
            TEXTS.render("id", "whatsapp.share_location"),
        ]
    )


def test_long_text_is_split_at_1600_characters_with_options_last() -> None:
    text = " ".join(["jalan"] * 700)

    messages, _ = render_reply(Reply(text, LANGUAGES), lang="id", texts=TEXTS, templates={})

    assert len(messages) == 3
    assert all(len(m.body or "") <= 1600 for m in messages)
    assert (messages[-1].body or "").endswith(numbered_options(LANGUAGES, lang="id"))


def test_the_rest_host_comes_from_api_base_url() -> None:
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    real = TwilioRestClient("https://api.twilio.com", username=ACCOUNT_SID, password=AUTH_TOKEN)
    local = TwilioRestClient("http://127.0.0.1:9999/twilio/", username=ACCOUNT_SID, password=AUTH_TOKEN)

    assert real.get_hostname(f"https://api.twilio.com{path}") == f"https://api.twilio.com{path}"
    assert (
        local.get_hostname(f"https://api.twilio.com{path}?x=1") == f"http://127.0.0.1:9999/twilio{path}?x=1"
    )
