"""``pontibot staff``: console accounts (add with a prompted or piped password, list, disable, link to
Telegram for the staff group)."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import ConfigOption, in_transaction, settings_from
from bot.staff.auth import Role, hash_password, normalize_username
from bot.staff.passwords import password_problem
from storage import staff_group_repository as staff_group_repo
from storage import staff_repository as staff_repo

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{2,64}$"

app = typer.Typer(
    name="staff",
    help="Akun konsol petugas / staff console accounts.",
    no_args_is_help=True,
    add_completion=False,
)
_err = Console(stderr=True)


def _read_password() -> str:
    """The password from a pipe (first line), or prompted twice without echo on a terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Kata sandi / password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="User name for signing in.")],
    role: Annotated[
        Role, typer.Option("--role", help="agent (handoffs) or admin (also assign, audit log).")
    ] = Role.AGENT,
    name: Annotated[str | None, typer.Option("--name", help="Name residents see on replies.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a console account; the password is prompted, or read from stdin when piped."""
    # Stored in the one spelling the login form looks up (" Sari" and "SARI" are "sari").
    username = normalize_username(username)
    if not re.match(USERNAME_PATTERN, username):
        _err.print("[red]nama pengguna: 2-64 huruf, angka, '.', '_' atau '-'[/red]")
        raise typer.Exit(2)
    password = _read_password()
    problem = password_problem(password, username=username)
    if problem is not None:
        _err.print(f"[red]{problem}[/red]", highlight=False)
        raise typer.Exit(2)
    settings = settings_from(config)

    async def create(session: AsyncSession) -> bool:
        if await staff_repo.find_staff_user(session, username=username) is not None:
            return False
        user = await staff_repo.create_staff_user(
            session,
            username=username,
            password_hash=hash_password(password),
            role=role.value,
            display_name=name,
        )
        await staff_repo.add_audit(
            session,
            who="cli",
            what="staff.add",
            target=f"user:{user.username}",
            details={"role": role.value},
        )
        return True

    if not in_transaction(settings, create):
        _err.print(f"[red]akun {username!r} sudah ada / account exists already[/red]", highlight=False)
        raise typer.Exit(1)
    _err.print(f"account {username} ({role.value}) created")


@app.command("list")
def list_accounts(config: ConfigOption = None) -> None:
    """List console accounts (never passwords)."""
    settings = settings_from(config)

    async def fetch(session: AsyncSession) -> list[tuple[str, str, str, str]]:
        users = await staff_repo.list_staff_users(session)
        return [
            (
                u.username,
                u.role,
                "yes" if u.active else "no",
                u.last_login_at.isoformat(timespec="minutes") if u.last_login_at else "-",
            )
            for u in users
        ]

    table = Table("user", "role", "active", "last login")
    for row in in_transaction(settings, fetch):
        table.add_row(*row)
    Console().print(table)


@app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The account to disable.")], config: ConfigOption = None
) -> None:
    """Disable an account (its sessions stop working at once)."""
    username = normalize_username(username)
    settings = settings_from(config)

    async def run(session: AsyncSession) -> bool:
        user = await staff_repo.find_staff_user(session, username=username)
        if user is None:
            return False
        user.active = False
        await staff_repo.add_audit(session, who="cli", what="staff.disable", target=f"user:{user.username}")
        return True

    if not in_transaction(settings, run):
        _err.print(f"[red]no account {username!r}[/red]")
        raise typer.Exit(1)
    _err.print(f"account {username} disabled")


@app.command("link-telegram")
def link_telegram(
    username: Annotated[str, typer.Argument(help="The console account.")],
    telegram_id: Annotated[
        str, typer.Argument(help="The person's numeric Telegram user id, or 'none' to unlink.")
    ],
    config: ConfigOption = None,
) -> None:
    """Link an account to a Telegram user: their messages in the staff group then act as this account."""
    username = normalize_username(username)
    unlink = telegram_id.strip().lower() == "none"
    if not unlink and not re.fullmatch(r"[0-9]{1,20}", telegram_id.strip()):
        _err.print("[red]TELEGRAM_ID: the numeric user id (e.g. 123456789), or 'none'[/red]")
        raise typer.Exit(2)
    settings = settings_from(config)

    async def run(session: AsyncSession) -> bool:
        user = await staff_group_repo.link_telegram(
            session, username=username, telegram_user_id=None if unlink else telegram_id.strip()
        )
        if user is None:
            return False
        await staff_repo.add_audit(
            session,
            who="cli",
            what="staff.unlink_telegram" if unlink else "staff.link_telegram",
            target=f"user:{user.username}",
            details={} if unlink else {"telegram_user_id": telegram_id.strip()},
        )
        return True

    if not in_transaction(settings, run):
        _err.print(f"[red]no account {username!r}[/red]")
        raise typer.Exit(1)
    _err.print(
        f"account {username} {'unlinked from Telegram' if unlink else 'linked to Telegram ' + telegram_id}"
    )
