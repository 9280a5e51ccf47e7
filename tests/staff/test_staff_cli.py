"""``pontibot staff``: accounts made from the command line sign in to the console."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.staff.auth import verify_password
from storage import staff_repository as staff_repo
from storage.db import Database
from tests.bot.test_cli import base_env, pontibot


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
