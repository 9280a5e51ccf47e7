"""The booth poster renders, and its QR codes decode to the right URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from bot.booth.poster import (
    PosterLink,
    render_poster,
    save_poster,
    telegram_link,
    webchat_link,
    whatsapp_link,
)
from flows.texts import Texts

TEXTS = Texts.load()


def test_links_are_the_documented_deep_links() -> None:
    assert telegram_link("@PontiBot") == "https://t.me/PontiBot?start=cfd"
    assert whatsapp_link("whatsapp:+62 811-5678-900") == "https://wa.me/628115678900?text=Halo"
    assert webchat_link("http://192.168.1.20:8080/") == "http://192.168.1.20:8080/?source=cfd"


@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_poster_qr_codes_decode_to_their_urls(tmp_path: Path, suffix: str) -> None:
    links = [
        PosterLink("Telegram", telegram_link("PontiBot")),
        PosterLink("WhatsApp", whatsapp_link("whatsapp:+14155238886")),
        PosterLink("Web chat", webchat_link("http://192.168.1.20:8080")),
    ]

    image = render_poster(links, texts=TEXTS, permits=["PBG-2026-00123", "NIB-2026-00456"])
    out = save_poster(image, tmp_path / f"poster{suffix}")

    assert out.stat().st_size > 10_000
    decoded = sorted(code.text for code in zxingcpp.read_barcodes(image))
    assert decoded == sorted(link.url for link in links)
    if suffix == ".png":
        with Image.open(out) as reread:
            assert reread.size == (2480, 3508)
            assert sorted(c.text for c in zxingcpp.read_barcodes(reread)) == sorted(
                link.url for link in links
            )


def test_a_poster_with_only_the_web_chat(tmp_path: Path) -> None:
    image = render_poster(
        [PosterLink("Web chat", "http://10.0.0.5:8080/?source=cfd")], texts=TEXTS, permits=[]
    )

    assert [c.text for c in zxingcpp.read_barcodes(image)] == ["http://10.0.0.5:8080/?source=cfd"]
    with pytest.raises(ValueError, match="unsupported"):
        save_poster(image, tmp_path / "poster.gif")
