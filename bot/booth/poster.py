"""The printable A4 QR poster for the Car Free Day booth (PNG or PDF)."""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from bot.settings import Settings
from flows.texts import Texts

A4_300DPI = (2480, 3508)
GREEN = (11, 110, 79)
DARK = (27, 31, 29)
FONT_FILES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
)


@dataclass(frozen=True, slots=True)
class PosterLink:
    """One QR code on the poster: what it is called and where it leads."""

    label: str
    url: str


def telegram_link(bot_username: str, start: str = "cfd") -> str:
    """Telegram deep link that opens the bot with a start payload (``/start cfd``)."""
    return f"https://t.me/{bot_username.lstrip('@')}?start={quote(start)}"


def whatsapp_link(sender: str, text: str = "Halo") -> str:
    """WhatsApp click-to-chat link for a sender like ``whatsapp:+62811…``."""
    digits = re.sub(r"\D", "", sender)
    return f"https://wa.me/{digits}?text={quote(text)}"


def webchat_link(base_url: str) -> str:
    """The booth web chat URL; ``?source=cfd`` tags the visitor's session."""
    return f"{base_url.rstrip('/')}/?source=cfd"


def booth_webchat_url(settings: Settings) -> str:
    """The web chat URL for phones on the booth LAN: demo.lan_url, else the detected LAN address."""
    if settings.demo.lan_url:
        return webchat_link(settings.demo.lan_url)
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  (comparing, not binding)
        host = lan_address() or "127.0.0.1"
    return webchat_link(f"http://{host}:{settings.server.port}")


def lan_address() -> str | None:
    """This machine's address on the booth LAN (the first non-loopback IPv4), if it has one."""
    try:
        _, _, addresses = socket.gethostbyname_ex(socket.gethostname())
    except OSError:
        return None
    for address in addresses:
        if not address.startswith("127."):
            return address
    return None


def _font(size: int, *, bold: bool = True) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONT_FILES[0] if bold else FONT_FILES[1]
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def qr_image(url: str, box_size: int = 14) -> Image.Image:
    """A QR code for ``url`` with a quiet zone, as an RGB image."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    code.add_data(url)
    code.make(fit=True)
    image: Image.Image = code.make_image(fill_color="black", back_color="white").get_image()
    return image.convert("RGB")


def _centered(draw: ImageDraw.ImageDraw, y: int, text: str, font: object, fill: tuple[int, int, int]) -> int:
    box = draw.textbbox((0, 0), text, font=font)  # type: ignore[arg-type]
    width, height = int(box[2] - box[0]), int(box[3] - box[1])
    draw.text(((A4_300DPI[0] - width) // 2, y), text, font=font, fill=fill)  # type: ignore[arg-type]
    return y + height


def render_poster(
    links: Sequence[PosterLink], *, texts: Texts, permits: Sequence[str], lang: str = "id"
) -> Image.Image:
    """The A4 poster (300 dpi): call to action, one QR per link, three things to try, demo permits."""
    if not links:
        raise ValueError("a poster needs at least one link")
    page = Image.new("RGB", A4_300DPI, "white")
    draw = ImageDraw.Draw(page)
    width = A4_300DPI[0]
    draw.rectangle((0, 0, width, 640), fill=GREEN)
    _centered(draw, 150, texts.render(lang, "booth.headline"), _font(230), (255, 255, 255))
    _centered(draw, 450, texts.render(lang, "booth.subheadline"), _font(64, bold=False), (255, 255, 255))
    _centered(draw, 720, texts.render(lang, "booth.call_to_action"), _font(84), DARK)

    qr_size = 660 if len(links) == 3 else 820
    gap = (width - qr_size * len(links)) // (len(links) + 1)
    top = 900
    for index, link in enumerate(links):
        image = qr_image(link.url).resize((qr_size, qr_size), Image.Resampling.NEAREST)
        left = gap + index * (qr_size + gap)
        page.paste(image, (left, top))
        label_font = _font(64)
        box = draw.textbbox((0, 0), link.label, font=label_font)
        draw.text(
            (left + (qr_size - (box[2] - box[0])) // 2, top + qr_size + 30),
            link.label,
            font=label_font,
            fill=GREEN,
        )
        url_font = _font(34, bold=False)
        shown = link.url.replace("https://", "").replace("http://", "")
        box = draw.textbbox((0, 0), shown, font=url_font)
        draw.text(
            (left + (qr_size - (box[2] - box[0])) // 2, top + qr_size + 120), shown, font=url_font, fill=DARK
        )

    y = top + qr_size + 300
    y = _centered(draw, y, texts.render(lang, "booth.try_title"), _font(84), GREEN) + 60
    example_permit = permits[0] if permits else "PBG-2026-00123"
    for key in ("booth.try_1", "booth.try_2", "booth.try_3"):
        y = (
            _centered(draw, y, texts.render(lang, key, permit=example_permit), _font(64, bold=False), DARK)
            + 45
        )
    if permits:
        y += 60
        y = _centered(draw, y, texts.render(lang, "booth.permits_title"), _font(64), GREEN) + 40
        for start in range(0, len(permits), 3):
            row = "   ·   ".join(permits[start : start + 3])
            y = _centered(draw, y, row, _font(58, bold=False), DARK) + 30
    draw.rectangle((0, A4_300DPI[1] - 200, width, A4_300DPI[1]), fill=GREEN)
    _centered(
        draw, A4_300DPI[1] - 140, texts.render(lang, "booth.footer"), _font(56, bold=False), (255, 255, 255)
    )
    return page


def save_poster(image: Image.Image, out: Path) -> Path:
    """Write the poster as PNG or PDF (by the file's suffix), at 300 dpi."""
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".pdf":
        image.save(out, "PDF", resolution=300.0)
    elif suffix == ".png":
        image.save(out, "PNG", dpi=(300, 300))
    else:
        raise ValueError(f"unsupported poster format {suffix!r}: use .png or .pdf")
    return out
