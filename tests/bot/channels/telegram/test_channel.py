"""The Telegram channel over real HTTP: pontibot (uvicorn) ⇄ python-telegram-bot ⇄ the fake Bot API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.channels.base import ChatUnreachable, StaffGroupUpdate
from bot.channels.telegram.callbacks import CALLBACK_TOKEN_PREFIX, callback_data_for
from bot.channels.telegram.channel import telegram_chunks
from flows.messages import Button, Reply, Venue
from flows.texts import Texts
from storage import repositories as repo
from storage.models import Message, ProcessedMessage, Resident
from tests.bot.channels.conftest import TelegramBot, load_update
from tests.support.metrics import sample

TEXTS = Texts.load()
RINA = 555000111
MENU_PAYLOADS = [
    "/document_requirements",
    "/permit_status",
    "/file_complaint",
    "/complaint_status",
    "/office_hours",
    "/talk_to_staff",
]
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40
MODES = ["polling", "webhook"]


async def transcript(bot: TelegramBot) -> list[Message]:
    async with bot.runtime.db.session() as session:
        return list((await session.execute(select(Message).order_by(Message.id))).scalars())


async def resident(bot: TelegramBot, chat_id: int = RINA) -> Resident | None:
    async with bot.runtime.db.session() as session:
        stmt = select(Resident).where(Resident.channel == "telegram", Resident.external_id == str(chat_id))
        return (await session.execute(stmt)).scalar_one_or_none()


async def count(bot: TelegramBot, model: Any) -> int:
    async with bot.runtime.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def keyboard(call: Any) -> list[tuple[str, str]]:
    markup = call.params.get("reply_markup") or {}
    return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row]


@pytest.mark.parametrize("mode", MODES)
async def test_halo_then_a_menu_button_press_is_answered(serve_telegram_bot: Any, mode: str) -> None:
    async with serve_telegram_bot(mode=mode) as bot:
        bot.fake.push_update(load_update("text"))
        [menu] = await bot.fake.wait_sent(1)

        greeting, intro = menu.params["text"].split("\n\n")
        assert greeting in TEXTS.variants("id", "greet")
        assert intro == TEXTS.render("id", "menu.intro")
        assert [data for _, data in keyboard(menu)] == MENU_PAYLOADS
        assert "parse_mode" not in menu.params

        bot.fake.push_update(load_update("callback_query"))
        [answered] = await bot.fake.wait_for("answerCallbackQuery")
        sent = await bot.fake.wait_sent(2)
        await bot.settle(700000003)

        assert answered.params["callback_query_id"] == "4382bfdwdsb323b2d9"
        pressed = [m for m in await transcript(bot) if m.direction == "in"][-1]
        assert (pressed.payload, pressed.text) == ("/talk_to_staff", "🙋 Bicara dengan petugas")
        replies = [m.text for m in await transcript(bot) if m.direction == "out"]
        assert [c.params["text"] for c in sent] == replies
        if mode == "webhook":
            url, secret, allowed = bot.fake.webhook
            assert (url, secret) == (f"{bot.url}/webhooks/telegram", "s3cret-token_for-tests")
            assert allowed == ["message", "edited_message", "callback_query", "my_chat_member"]
            assert bot.fake.calls("getUpdates") == []
        else:
            assert bot.fake.calls("deleteWebhook", ok_only=True)


@pytest.mark.parametrize("mode", MODES)
async def test_start_with_the_cfd_deep_link_stores_the_source(serve_telegram_bot: Any, mode: str) -> None:
    async with serve_telegram_bot(mode=mode) as bot:
        bot.fake.push_update(load_update("start_cfd"))
        await bot.settle(700000002)

        [first] = bot.fake.sent(RINA)
        assert first.params["text"].split("\n\n")[0] in TEXTS.variants("id", "greet")
        found = await resident(bot)
        assert found is not None
        assert (found.source, found.display_name) == ("cfd", "Rina")


@pytest.mark.parametrize("mode", MODES)
async def test_photo_and_location_reach_the_dispatcher_with_the_photo_stored(
    serve_telegram_bot: Any, mode: str
) -> None:
    async with serve_telegram_bot(mode=mode) as bot:
        bot.fake.add_file("AgACAgUAAxkBAAIBlarge", JPEG)
        bot.fake.push_update(load_update("photo"))
        bot.fake.push_update(load_update("location", update_id=700000006))
        await bot.settle(700000006)

        [photo, location] = [m for m in await transcript(bot) if m.direction == "in"]
        assert [c.params["file_id"] for c in bot.fake.calls("getFile")] == ["AgACAgUAAxkBAAIBlarge"]
        [media] = photo.data["media"]
        assert photo.data["kind"] == "photo"
        assert photo.text == "jalan berlubang depan pasar"
        assert media["content_type"] == "image/jpeg"
        assert bot.runtime.media.path(media["key"]).read_bytes() == JPEG
        assert location.data["kind"] == "location"
        assert location.data["location"] == {"lat": -0.02633, "lon": 109.342504}


async def test_a_photo_over_the_size_limit_is_refused_politely_without_downloading(
    serve_telegram_bot: Any,
) -> None:
    async with serve_telegram_bot(server={"media_max_bytes": 50_000}) as bot:
        bot.fake.add_file("AgACAgUAAxkBAAIBlarge", JPEG)
        bot.fake.push_update(load_update("photo"))
        await bot.settle(700000005)

        assert [c.params["text"] for c in bot.fake.sent()] == [TEXTS.render("id", "telegram.photo_rejected")]
        assert bot.fake.calls("getFile") == []
        assert await count(bot, Message) == 0


@pytest.mark.parametrize("header", [None, "wrong-secret"])
async def test_a_webhook_without_our_secret_is_refused_and_nothing_is_processed(
    serve_telegram_bot: Any, header: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve_telegram_bot(mode="webhook") as bot:
        headers = {"X-Telegram-Bot-Api-Secret-Token": header} if header else {}
        response = await bot.client.post("/webhooks/telegram", json=load_update("text"), headers=headers)
        await bot.channel.drain()

        assert response.status_code == 403
        assert (await count(bot, Message), await count(bot, ProcessedMessage)) == (0, 0)
        assert bot.fake.sent() == []
        [warning] = [
            r
            for r in caplog.records
            if r.name.startswith("bot.channels.telegram") and r.levelname == "WARNING"
        ]
        assert "secret token" in warning.getMessage()
        assert "halo min" not in warning.getMessage()


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'{"message": {"text": "halo"}}', b'{"update_id": "x"}']
)
async def test_a_webhook_body_that_is_not_an_update_is_a_400(serve_telegram_bot: Any, body: bytes) -> None:
    async with serve_telegram_bot(mode="webhook") as bot:
        headers = {
            "X-Telegram-Bot-Api-Secret-Token": "s3cret-token_for-tests",
            "Content-Type": "application/json",
        }
        response = await bot.client.post("/webhooks/telegram", content=body, headers=headers)

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_update"
        assert await count(bot, Message) == 0


async def test_the_same_update_posted_twice_to_the_webhook_gets_one_reply(serve_telegram_bot: Any) -> None:
    async with serve_telegram_bot(mode="webhook") as bot:
        headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token_for-tests"}
        first = await bot.client.post("/webhooks/telegram", json=load_update("text"), headers=headers)
        again = await bot.client.post("/webhooks/telegram", json=load_update("text"), headers=headers)
        await bot.channel.drain()

        assert (first.status_code, again.status_code) == (200, 200)
        assert len(bot.fake.sent()) == 1
        assert len([m for m in await transcript(bot) if m.direction == "in"]) == 1


async def test_the_same_update_polled_twice_gets_one_reply(serve_telegram_bot: Any) -> None:
    async with serve_telegram_bot(mode="polling") as bot:
        bot.fake.push_update(load_update("text"))
        bot.fake.push_update(load_update("text"))
        await bot.settle(700000001)

        assert len(bot.fake.sent()) == 1


async def test_a_429_pauses_sending_for_retry_after_then_delivers(serve_telegram_bot: Any) -> None:
    async with serve_telegram_bot() as bot:
        bot.fake.fail_next("sendMessage", status=429, retry_after=1)
        bot.fake.push_update(load_update("text"))
        await bot.settle(700000001)

        refused, delivered = bot.fake.calls("sendMessage")
        assert (refused.status, delivered.status) == (429, 200)
        assert delivered.at - refused.at >= 0.95
        assert delivered.params["text"] == refused.params["text"]
        metrics = (await bot.client.get("/metrics")).text
        assert sample(metrics, "pontibot_platform_errors_total", channel="telegram", status="429") == 1
        assert sample(metrics, "pontibot_sends_total", channel="telegram", outcome="ok") == 1


async def test_a_403_marks_the_resident_unreachable_until_they_write_again(serve_telegram_bot: Any) -> None:
    async with serve_telegram_bot() as bot:
        bot.fake.block_chat(RINA)
        bot.fake.push_update(load_update("text"))
        await bot.settle(700000001)

        assert [c.status for c in bot.fake.calls("sendMessage")] == [403]
        metrics = (await bot.client.get("/metrics")).text
        assert sample(metrics, "pontibot_platform_errors_total", channel="telegram", status="403") == 1
        assert sample(metrics, "pontibot_sends_total", channel="telegram", outcome="blocked") == 1
        blocked = await resident(bot)
        assert blocked is not None and blocked.unreachable
        with pytest.raises(ChatUnreachable):
            await bot.channel.send(str(RINA), [Reply("Izin PBG Anda sudah terbit.")])
        assert len(bot.fake.calls("sendMessage")) == 1

        bot.fake.unblock_chat(RINA)
        bot.fake.push_update(load_update("text", update_id=700000100))
        await bot.settle(700000100)

        back = await resident(bot)
        assert back is not None and not back.unreachable
        assert len(bot.fake.sent(RINA)) == 1


async def test_a_long_text_is_split_at_paragraphs_within_4096_characters(serve_telegram_bot: Any) -> None:
    paragraph = "Persyaratan KTP-el: fotokopi KK, surat pengantar RT/RW, pas foto. " * 20
    text = "\n\n".join([paragraph.strip()] * 9)
    async with serve_telegram_bot() as bot:
        ids = await bot.channel.send(str(RINA), [Reply(text)])

        chunks = [c.params["text"] for c in bot.fake.sent(RINA)]
        assert len(ids) == len(chunks) == 3
        assert all(len(chunk) <= 4096 for chunk in chunks)
        assert "\n\n".join(chunks) == text


def test_chunks_count_utf16_units_like_telegram() -> None:
    text = "🙏" * 3000  # 6000 UTF-16 units

    chunks = telegram_chunks(text)

    assert "".join(chunks) == text
    assert all(len(c.encode("utf-16-le")) // 2 <= 4096 for c in chunks)


@pytest.mark.parametrize(
    ("fixture", "key"),
    [
        ("sticker", "telegram.unsupported.sticker"),
        ("voice", "telegram.unsupported.voice"),
        ("document", "telegram.unsupported.document"),
        ("edited_message", "telegram.unsupported.edited"),
    ],
)
async def test_what_the_bot_cannot_read_gets_a_polite_answer_once(
    serve_telegram_bot: Any, fixture: str, key: str
) -> None:
    async with serve_telegram_bot() as bot:
        update = load_update(fixture)
        bot.fake.push_update(update)
        bot.fake.push_update(update)
        await bot.settle(update["update_id"])

        assert [c.params["text"] for c in bot.fake.sent(RINA)] == [TEXTS.render("id", key)]
        assert await count(bot, Message) == 0


async def test_group_chats_are_ignored(serve_telegram_bot: Any) -> None:
    async with serve_telegram_bot() as bot:
        bot.fake.push_update(load_update("group_message"))
        await bot.settle(700000010)

        assert bot.fake.sent() == []
        assert (await count(bot, Message), await count(bot, Resident)) == (0, 0)


async def test_the_staff_group_goes_to_the_staff_hook(serve_telegram_bot: Any) -> None:
    received: list[StaffGroupUpdate] = []

    async def staff_hook(update: StaffGroupUpdate) -> None:
        received.append(update)

    async with serve_telegram_bot(telegram={"staff_group_id": -1001987654321}) as bot:
        bot.channel.on_staff_group = staff_hook
        bot.fake.push_update(load_update("group_message"))
        await bot.settle(700000010)

        assert [(u.chat_id, u.user_id, u.text) for u in received] == [
            ("-1001987654321", str(RINA), "halo semua, ada yang tahu jam buka disdukcapil?")
        ]
        assert bot.fake.sent() == []


async def test_a_payload_longer_than_64_bytes_travels_as_a_token_and_comes_back(
    serve_telegram_bot: Any,
) -> None:
    payload = '/document_requirements{"document_type": "akta_kelahiran", "location": "61.71.01.1004"}'
    async with serve_telegram_bot() as bot:
        bot.fake.push_update(load_update("text"))
        await bot.settle(700000001)
        # The reply is stored with its buttons before it is sent, as the dispatcher does.
        async with bot.runtime.db.session() as session:
            conversation = await repo.find_conversation(session, channel="telegram", external_id=str(RINA))
            assert conversation is not None
            await repo.add_message(
                session,
                conversation_id=conversation.id,
                direction="out",
                kind="push",
                text="Akta kelahiran",
                data=Reply("Akta kelahiran", (Button("Syarat", payload),)).to_dict(),
            )
        await bot.channel.send(str(RINA), [Reply("Akta kelahiran", (Button("Syarat", payload),))])
        [(_, data)] = keyboard(bot.fake.sent(RINA)[-1])
        bot.channel.payloads.forget()  # as after a restart: found again in the transcript

        press = load_update("callback_query", update_id=700000200)
        press["callback_query"]["data"] = data
        bot.fake.push_update(press)
        await bot.settle(700000200)

        assert data.startswith(CALLBACK_TOKEN_PREFIX) and len(data.encode()) <= 64
        assert callback_data_for("/help") == "/help"
        pressed = [m for m in await transcript(bot) if m.direction == "in"][-1]
        assert pressed.payload == payload


async def test_location_request_keyboard_and_venue(serve_telegram_bot: Any) -> None:
    venue = Venue(-0.0307, 109.3331, "Disdukcapil Kota Pontianak", "Jl. Letjen Sutoyo, Pontianak")
    async with serve_telegram_bot() as bot:
        await bot.channel.send(
            str(RINA),
            [
                Reply("Di mana lokasinya, Kak?", request_location=True),
                Reply("Kantornya di sini:", (Button("Menu", "/help"),), venue=venue),
            ],
        )

        ask, intro, pin = bot.fake.sent(RINA)
        assert ask.params["reply_markup"]["keyboard"] == [
            [{"text": TEXTS.render("id", "telegram.location_button"), "request_location": True}]
        ]
        assert "reply_markup" not in intro.params
        assert (pin.method, pin.params["latitude"], pin.params["title"]) == (
            "sendVenue",
            -0.0307,
            "Disdukcapil Kota Pontianak",
        )
        assert keyboard(pin) == [("Menu", "/help")]


async def test_one_limiter_holds_each_chat_to_its_rate(serve_telegram_bot: Any) -> None:
    rates = {"rates": {"telegram_global": 1000, "telegram_per_chat": 10, "whatsapp": 1}}
    async with serve_telegram_bot(notifications=rates) as bot:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bot.channel.send(str(RINA), [Reply("satu"), Reply("dua"), Reply("tiga")])
        one_chat = loop.time() - started
        started = loop.time()
        await asyncio.gather(*(bot.channel.send(str(chat), [Reply("halo")]) for chat in (1, 2, 3)))
        three_chats = loop.time() - started

        assert one_chat >= 0.19
        assert three_chats < 0.19
        assert bot.channel.limiter.per_key_rate == 10


async def test_blocking_and_unblocking_the_bot_is_tracked(serve_telegram_bot: Any) -> None:
    def membership(update_id: int, status: str) -> dict[str, Any]:
        rina = load_update("text")["message"]["from"]
        return {
            "update_id": update_id,
            "my_chat_member": {
                "chat": load_update("text")["message"]["chat"],
                "from": rina,
                "date": 1767225700,
                "old_chat_member": {
                    "user": {"id": 123456789, "is_bot": True, "first_name": "Ponti"},
                    "status": "member",
                },
                "new_chat_member": {
                    "user": {"id": 123456789, "is_bot": True, "first_name": "Ponti"},
                    "status": status,
                    **({"until_date": 0} if status == "kicked" else {}),
                },
            },
        }

    async with serve_telegram_bot() as bot:
        bot.fake.push_update(load_update("text"))
        bot.fake.push_update(membership(700000300, "kicked"))
        await bot.settle(700000300)
        blocked = await resident(bot)

        bot.fake.push_update(membership(700000301, "member"))
        await bot.settle(700000301)
        back = await resident(bot)

        assert blocked is not None and blocked.unreachable
        assert back is not None and not back.unreachable


def test_only_the_token_means_polling_telegram_itself(
    settings: Any, fake_telegram: Any, tmp_path: Any
) -> None:
    from bot.settings import load_settings
    from tests.conftest import REPO

    only_token = load_settings(REPO / "config.yml", environ={"TELEGRAM_BOT_TOKEN": fake_telegram.token})

    assert only_token.telegram_enabled
    assert (only_token.telegram.base_url, only_token.telegram.webhook_url) == (
        "https://api.telegram.org",
        None,
    )


def test_webhook_mode_without_a_url_is_refused_with_what_to_set() -> None:
    from bot.settings import ConfigError, load_settings
    from tests.conftest import REPO

    with pytest.raises(ConfigError, match=r"telegram: .*webhook_url is empty"):
        load_settings(REPO / "config.yml", environ={}, telegram={"mode": "webhook"})
