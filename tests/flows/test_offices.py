"""Office hours and locations on today's calendar in WIB: a resident's conversations over the web chat API."""

from __future__ import annotations

from datetime import datetime

from flows.knowledge import load_offices
from tests.flows.conftest import one_of, payloads, say, text_of

OFFICES = load_offices().offices
FRIDAY_MORNING = datetime(2026, 11, 27, 10, 0)


async def test_hours_then_saturday_follows_up_on_the_same_office(chat) -> None:
    resident = chat("off-1")
    resident.at(FRIDAY_MORNING)

    hours = await resident.say("disdukcapil buka jam berapa")
    assert text_of(hours).startswith(say("offices.hours_title", name="Disdukcapil")[0])
    assert "Senin–Kamis: 08.00–12.00, 13.00–15.00 (istirahat 12.00–13.00)" in text_of(hours)
    assert "Jumat: 08.00–11.00, 13.30–15.00 (istirahat 11.00–13.30)" in text_of(hours)
    assert say("offices.now_open", until="11.00")[0] in text_of(hours)
    assert '/office_location{"office": "disdukcapil"}' in payloads(hours)

    saturday = await resident.say("Sabtu buka?")
    assert say("offices.closed_day", name="Disdukcapil", day="besok, Sabtu 28/11")[0] in text_of(saturday)
    assert say(
        "offices.next_open", day="Senin 30/11", hours="08.00–12.00, 13.00–15.00 (istirahat 12.00–13.00)"
    )[0] in text_of(saturday)


async def test_tomorrow_a_public_holiday_or_cuti_bersama_or_an_ordinary_day(chat) -> None:
    resident = chat("off-2")

    resident.at(datetime(2026, 12, 23, 9, 0))
    cuti = await resident.say("besok tanggal merah disdukcapil buka?")
    assert say(
        "offices.closed_cuti", name="Disdukcapil", day="besok, Kamis 24/12", holiday="Kelahiran Yesus Kristus"
    )[0] in text_of(cuti)

    resident.at(datetime(2026, 12, 24, 9, 0))
    natal = await resident.say("besok tanggal merah buka?")
    assert say(
        "offices.closed_holiday",
        name="Disdukcapil",
        day="besok, Jumat 25/12",
        holiday="Kelahiran Yesus Kristus",
    )[0] in text_of(natal)
    assert "Senin 28/12" in text_of(natal)

    resident.at(datetime(2026, 11, 23, 9, 0))
    ordinary = await resident.say("besok tanggal merah buka?")
    assert say("offices.not_a_holiday", day="besok, Selasa 24/11")[0] in text_of(ordinary)
    assert one_of(
        "offices.open_day",
        name="Disdukcapil",
        day="besok, Selasa 24/11",
        hours="08.00–12.00, 13.00–15.00 (istirahat 12.00–13.00)",
    )(text_of(ordinary))


async def test_a_year_without_a_holiday_decree_says_so(chat) -> None:
    resident = chat("off-3")
    resident.at(datetime(2028, 1, 3, 9, 0))

    answer = await resident.say("jam buka mpp hari ini")

    assert say("offices.no_holiday_data", year=2028)[0] in text_of(answer)


async def test_location_comes_with_a_map_pin(chat) -> None:
    resident = chat("off-4")

    [reply] = await resident.say("alamat mal pelayanan publik dimana")

    mpp = OFFICES["mpp"]
    assert mpp.address in reply["text"]
    assert reply["venue"] == {"lat": mpp.lat, "lon": mpp.lon, "title": mpp.short.id, "address": mpp.address}
    assert payloads([reply]) == ['/office_hours{"office": "mpp"}']


async def test_kantor_camat_asks_which_and_a_wrong_answer_is_asked_again(chat) -> None:
    resident = chat("off-5")

    which = await resident.say("kantor camat dimana")
    assert text_of(which) == say("offices.ask_camat")[0]
    assert len(payloads(which)) == 6

    wrong = await resident.say("sungai raya")
    assert text_of(wrong) == say("offices.ask_camat_again")[0]

    timur = await resident.press('/office_location{"office": "kantor_camat_pontianak_timur"}')
    assert OFFICES["kantor_camat_pontianak_timur"].address in text_of(timur)
    assert timur[0]["venue"]["title"] == "Kantor Camat Pontianak Timur"


async def test_a_kelurahan_office_is_found_through_its_kecamatan(chat) -> None:
    resident = chat("off-6")

    answer = await resident.say("kantor lurah parit tokaya dimana")

    assert "Kantor Lurah Parit Tokaya" in text_of(answer)
    assert "Pontianak Selatan" in text_of(answer)
    assert payloads(answer) == ['/office_location{"office": "kantor_camat_pontianak_selatan"}']


async def test_which_office_is_asked_and_the_break_is_explained(chat) -> None:
    resident = chat("off-7")
    resident.at(datetime(2026, 11, 27, 12, 0))

    which = await resident.say("jam buka kantor")
    assert text_of(which) == say("offices.ask")[0]

    wrong = await resident.say("kantor pajak")
    assert text_of(wrong) == say("offices.ask_again")[0]

    mpp = await resident.press('/office_hours{"office": "mpp"}')
    assert say("offices.now_break", at="13.30")[0] in text_of(mpp)


async def test_in_english(chat) -> None:
    resident = chat("off-8")
    resident.at(FRIDAY_MORNING)
    await resident.say("english please")

    answer = await resident.say("is disdukcapil open on saturday?")

    assert say("offices.closed_day", "en", name="Disdukcapil", day="tomorrow, Saturday 28/11")[0] in text_of(
        answer
    )
