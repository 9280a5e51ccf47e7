"""``pontibot staff``: accounts made from the command line sign in to the console."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.staff.auth import verify_password
from storage import staff_repository as staff_repo
from storage.db import Database
from tests.bot.test_cli import base_env
from tests.support import pontibot


def test_staff_add_with_a_piped_password_then_list(tmp_path: Path, nlu_model_dir: Path) -> None:
    env = base_env(tmp_path, nlu_model_dir)
    assert pontibot("db", "upgrade", env=env).returncode == 0

    added = pontibot(
        "staff", "add", "sari", "--role", "admin", "--name", "Sari", env=env, stdin="kata-sandi-kota\n"
    )
    again = pontibot("staff", "add", "SARI", env=env, stdin="kata-sandi-kota\n")
    short = pontibot("staff", "add", "budi", env=env, stdin="pendek\n")
    listed = pontibot("staff", "list", env=env)

    assert added.returncode == 0, added.stderr
    assert again.returncode == 1 and "exists already" in again.stderr
    assert short.returncode == 2
    assert "sari" in listed.stdout and "admin" in listed.stdout and "budi" not in listed.stdout

    async def stored() -> tuple[str, str, str | None, str]:
        db = Database(env["PONTIBOT_DATABASE__URL"])
        try:
            async with db.session() as session:
                user = await staff_repo.find_staff_user(session, username="sari")
                assert user is not None
                return user.role, user.password_hash, user.display_name, user.username
        finally:
            await db.dispose()

    role, password_hash, name, username = asyncio.run(stored())
    assert (role, name, username) == ("admin", "Sari", "sari")
    assert password_hash.startswith("$argon2id$")
    assert verify_password(password_hash, "kata-sandi-kota")
    assert not verify_password(password_hash, "salah")


def test_staff_link_telegram_sets_and_clears_the_telegram_user(tmp_path: Path, nlu_model_dir: Path) -> None:
    env = base_env(tmp_path, nlu_model_dir)
    assert pontibot("db", "upgrade", env=env).returncode == 0
    assert pontibot("staff", "add", "sari", env=env, stdin="kata-sandi-kota\n").returncode == 0
    assert pontibot("staff", "add", "budi", env=env, stdin="kata-sandi-kota\n").returncode == 0

    linked = pontibot("staff", "link-telegram", "sari", "7001", env=env)
    moved = pontibot("staff", "link-telegram", "budi", "7001", env=env)  # one account per Telegram user
    bad = pontibot("staff", "link-telegram", "sari", "@sari", env=env)
    unknown = pontibot("staff", "link-telegram", "nobody", "7002", env=env)

    async def linked_to() -> dict[str, str | None]:
        db = Database(env["PONTIBOT_DATABASE__URL"])
        try:
            async with db.session() as session:
                return {u.username: u.telegram_user_id for u in await staff_repo.list_staff_users(session)}
        finally:
            await db.dispose()

    assert (linked.returncode, moved.returncode, bad.returncode, unknown.returncode) == (0, 0, 2, 1)
    assert asyncio.run(linked_to()) == {"budi": "7001", "sari": None}
    assert pontibot("staff", "link-telegram", "budi", "none", env=env).returncode == 0
    assert asyncio.run(linked_to()) == {"budi": None, "sari": None}


def test_staff_add_normalises_the_name_and_refuses_common_or_name_bearing_passwords(
    tmp_path: Path, nlu_model_dir: Path
) -> None:
    env = base_env(tmp_path, nlu_model_dir)
    assert pontibot("db", "upgrade", env=env).returncode == 0

    common = pontibot("staff", "add", "budi", env=env, stdin="1234567890\n")
    with_name = pontibot("staff", "add", "budi", env=env, stdin="Rahasia-BUDI-2026\n")
    spaces_only = pontibot("staff", "add", " \u00a0\t", env=env, stdin="kata-sandi-kota\n")
    added = pontibot("staff", "add", " Budi\u00a0", env=env, stdin="kata-sandi-kota\n")
    again = pontibot("staff", "add", "ＢＵＤＩ", env=env, stdin="kata-sandi-kota\n")

    assert common.returncode == 2 and "terlalu umum" in common.stderr
    assert with_name.returncode == 2 and "nama pengguna" in with_name.stderr
    assert spaces_only.returncode == 2 and "nama pengguna" in spaces_only.stderr
    assert added.returncode == 0, added.stderr
    assert again.returncode == 1 and "sudah ada" in again.stderr

    async def names() -> list[str]:
        db = Database(env["PONTIBOT_DATABASE__URL"])
        try:
            async with db.session() as session:
                return [u.username for u in await staff_repo.list_staff_users(session)]
        finally:
            await db.dispose()

    assert asyncio.run(names()) == ["budi"]
