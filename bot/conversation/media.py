"""The media store: photos residents send, kept on disk under a content-addressed key."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from flows.messages import Media

ALLOWED_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}\.(jpg|png|webp|gif)$")


class MediaRejected(ValueError):
    """A file was refused: too big, empty, or not a type we accept."""


def sniff_type(data: bytes) -> str | None:
    """The image type from the file's first bytes (never trust the sender's Content-Type alone)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


class MediaStore:
    """Saves images under ``root``; keys are ``ab/<sha256>.<ext>`` so the same photo is stored once."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def save(self, data: bytes) -> Media:
        """Store an image and describe it; raises MediaRejected for anything else."""
        if not data:
            raise MediaRejected("empty file")
        if len(data) > self.max_bytes:
            raise MediaRejected(f"file of {len(data)} bytes is over the {self.max_bytes}-byte limit")
        content_type = sniff_type(data)
        if content_type is None:
            raise MediaRejected("not a JPEG, PNG, WebP or GIF image")
        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest[:2]}/{digest}{ALLOWED_TYPES[content_type]}"
        path = self.root / key
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return Media(key=key, content_type=content_type, size=len(data))

    def path(self, key: str) -> Path:
        """The file of a stored key; raises KeyError for keys that are malformed or missing."""
        if not _KEY.match(key):
            raise KeyError(key)
        path = self.root / key
        if not path.is_file():
            raise KeyError(key)
        return path
