"""`pontibot db backup` / `db restore`: a consistent copy of the database and the photos, and back."""

from __future__ import annotations

import asyncio
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from storage import repositories as repo
from storage.backup import BackupError, backup, database_is_empty, restore
from storage.db import Database
from storage.models import Resident
from tests.conftest import REPO

PHOTO = b"\xff\xd8\xff\xe0 a photo of a pothole"


def add_resident(url: str, chat: str) -> None:
    async def add() -> None:
        db = Database(url)
        try:
            async with db.session() as session:
                await repo.get_or_create_resident(session, channel="webchat", external_id=chat)
        finally:
            await db.dispose()

    asyncio.run(add())


def chats(url: str) -> list[str]:
    async def read() -> list[str]:
        db = Database(url)
        try:
            async with db.session() as session:
                rows = await session.execute(select(Resident.external_id))
                return sorted(rows.scalars())
        finally:
            await db.dispose()

    return asyncio.run(read())


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    (folder / "ab").mkdir(parents=True)
    (folder / "ab" / "photo.jpg").write_bytes(PHOTO)
    return folder


def test_a_backup_brings_back_the_database_and_the_photos(
    database_url: str, media: Path, tmp_path: Path
) -> None:
    add_resident(database_url, "before-backup")
    summary = backup(database_url, media, tmp_path / "backup.tar.gz")
    add_resident(database_url, "after-backup")
    (media / "ab" / "photo.jpg").unlink()

    with pytest.raises(BackupError, match="--force"):
        restore(database_url, media, summary.path)
    assert chats(database_url) == ["after-backup", "before-backup"]  # refused: nothing changed
    manifest = restore(database_url, media, summary.path, force=True)

    assert summary.media_files == 1 and manifest["media"] == ["ab/photo.jpg"]
    assert chats(database_url) == ["before-backup"]
    assert (media / "ab" / "photo.jpg").read_bytes() == PHOTO


def test_an_empty_database_is_restored_without_force(database_url: str, media: Path, tmp_path: Path) -> None:
    add_resident(database_url, "kept")
    summary = backup(database_url, media, tmp_path / "backup.tar.gz")
    restore(database_url, media, summary.path, force=True)  # and again, now over itself
    assert not database_is_empty(database_url)


def test_what_is_not_a_backup_is_refused_clearly(database_url: str, media: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file")
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(REPO / "config.yml", arcname="config.yml")

    for path, message in [
        (junk, "cannot read the backup"),
        (other, "not a pontibot backup"),
        (tmp_path / "none", "no such"),
    ]:
        with pytest.raises(BackupError, match=message):
            restore(database_url, media, path)


def test_the_commands_round_trip(database_url: str, media: Path, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "PONTIBOT_SERVER__MEDIA_DIR": str(media)}
    runner = CliRunner()
    add_resident(database_url, "from-the-cli")
    target = tmp_path / "nightly.tar.gz"

    made = runner.invoke(app, ["db", "backup", str(target), "--config", str(REPO / "config.yml")], env=env)
    refused = runner.invoke(
        app, ["db", "restore", str(target), "--config", str(REPO / "config.yml")], env=env
    )
    forced = runner.invoke(
        app, ["db", "restore", str(target), "--force", "--config", str(REPO / "config.yml")], env=env
    )

    assert made.exit_code == 0, made.output
    assert "1 media files" in made.output
    assert (refused.exit_code, "--force" in refused.output) == (1, True)
    assert forced.exit_code == 0, forced.output
    assert chats(database_url) == ["from-the-cli"]
