"""Menu, help, small talk, fallback, language, emergency and interruptions over the web chat API."""

from __future__ import annotations

from tests.flows.conftest import TEXTS, one_of, payloads, say, text_of

MENU = ["/document_requirements", "/permit_status", "/file_complaint", "/complaint_status", "/office_hours"]


async def test_greeting_menu_and_help_with_buttons(chat) -> None:
    resident = chat("core-1")

    hello = await resident.say("halo min")
    assert one_of("greet")(text_of(hello))
    assert payloads(hello)[:5] == MENU

    menu = await resident.say("menu")
    assert text_of(menu) == say("menu.intro")[0]
    assert payloads(menu)[:5] == MENU

    helped = await resident.say("bisa bantu apa aja")
    assert text_of(helped).startswith(say("help")[0])
    assert payloads(helped)[:5] == MENU


async def test_small_talk_varies_its_wording(chat) -> None:
    resident = chat("core-2")

    thanks = [text_of(await resident.say("makasih ya")) for _ in range(3)]
    bots = [text_of(await resident.say("kamu bot ya?")) for _ in range(2)]
    bye = text_of(await resident.say("dadah"))
    outside = await resident.say("skor bola semalam berapa")

    assert set(thanks) <= set(say("thank_you")) and len(set(thanks)) > 1
    assert set(bots) <= set(say("bot_challenge")) and len(set(bots)) > 1
    assert bye in say("goodbye")
    assert text_of(outside) in say("out_of_scope")
    assert payloads(outside)[:5] == MENU


async def test_two_misunderstandings_in_a_row_offer_a_person(chat) -> None:
    resident = chat("core-3")

    # A pin with no question pending is not understood (intent nlu_fallback), deterministically.
    first = await resident.share_location(-0.0263, 109.3425)
    second = await resident.share_location(-0.0263, 109.3425)

    assert text_of(first) in say("fallback.first")
    assert text_of(second) not in say("fallback.first")
    assert {"/talk_to_staff", "/affirm"} & set(payloads(second))


async def test_language_is_stored_per_resident_and_asked_when_unclear(chat) -> None:
    resident = chat("core-4")

    english = await resident.say("english please")
    assert text_of(english) == say("language.changed", "en")[0]
    hello = await resident.say("hello")
    assert one_of("greet", "en")(text_of(hello))

    back = await resident.press('/change_language{"language": "id"}')
    assert text_of(back) == say("language.changed")[0]
    already = await resident.press('/change_language{"language": "id"}')
    assert text_of(already) == say("language.already")[0]


async def test_emergency_gives_the_numbers_at_once_and_offers_a_person(chat, live_server) -> None:
    resident = chat("core-5")
    await resident.say("jam buka kantor")

    emergency = await resident.say("tolong ada kebakaran")

    text = text_of(emergency)
    assert "112" in text
    for name, number in live_server.runtime.settings.contact.emergency_numbers.items():
        assert f"{name}: {number}" in text
    assert any(p.startswith("/talk_to_staff") for p in payloads(emergency))
    after = await resident.say("disdukcapil")
    assert not text_of(after).startswith(say("offices.ask_again")[0])


async def test_interruptions_in_a_waiting_question_and_wrong_inputs(chat, live_server) -> None:
    resident = chat("core-6")
    ask = say("subscriptions.ask")[0]

    asked = await resident.say("kabari saya")
    assert text_of(asked) == ask

    side = await resident.say("alamat mal pelayanan publik dimana")
    assert side[0]["venue"] is not None
    assert side[-1]["text"].endswith(ask)

    helped = await resident.say("menu")
    assert helped[-1]["text"].endswith(ask)

    english = await resident.say("english please")
    assert english[-1]["text"].endswith(say("subscriptions.ask", "en")[0])

    wrong = await resident.say("blah")
    assert text_of(wrong) == say("subscriptions.ask_again", "en")[0]

    done = await resident.say("PBG-2026-00125")
    assert text_of(done) == say("subscriptions.subscribed", "en", item="permit PBG-2026-00125")[0]


async def test_stickers_and_locations_are_answered_in_every_state(chat, live_server) -> None:
    resident = chat("core-7")
    pin = await resident.share_location(-0.0263, 109.3425)
    assert pin

    await resident.say("syarat dokumen")
    located = await resident.share_location(-0.0263, 109.3425)
    assert text_of(located) == say("documents.ask_again")[0]
    assert TEXTS.keys("id") == TEXTS.keys("en")
