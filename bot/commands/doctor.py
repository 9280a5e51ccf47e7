"""``pontibot doctor``: is this installation ready? Configuration, database, model, media, and every
configured dependency checked for real, one line each with what to do; exit 1 when anything fails.

``pontibot run`` runs the fast part (no network) before it starts.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import typer
from rich.console import Console

from bot.commands import ConfigOption, settings_from
from bot.settings import Settings
from bot.wiring.backends import BackendConfigError, build_complaint_backend, build_permits
from integrations.base import IntegrationError
from integrations.open311 import Open311ComplaintBackend
from nlu.classifier import stored_hash
from nlu.pipeline import training_hash
from storage.db import Database
from storage.migrate import schema_is_current

NAME = "doctor"
app = typer.Typer(
    name=NAME, help="Check the installation and every configured dependency.", add_completion=False
)
TIMEOUT = 10.0
PROBE_PERMIT = "PBG-0000-00000"  # a number no licensing system holds: any answer but an error will do


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``✓ name: detail`` or ``✗ name: detail — what to do``."""
        mark = "✓" if self.ok else "✗"
        return f"{mark} {self.name}: {self.detail}" + (f" — {self.fix}" if self.fix and not self.ok else "")


async def check_database(settings: Settings) -> Check:
    """Reachable, and at the newest migration."""
    db = Database(settings.database_url)
    try:
        await db.ping()
        if not await schema_is_current(db.engine):
            return Check("database", False, "reachable, schema out of date", "run `pontibot db upgrade`")
        return Check(
            "database", True, f"reachable, schema at the newest migration ({db.engine.dialect.name})"
        )
    except Exception as exc:  # every way a database can be unreachable is a failed check here
        return Check(
            "database", False, f"cannot reach it ({type(exc).__name__})", "check DATABASE_URL / database.url"
        )
    finally:
        await db.dispose()


def check_model(settings: Settings) -> Check:
    """The embedded model is trained on the current data (a Rasa server is checked over the network)."""
    if settings.nlu.backend == "rasa":
        return Check("nlu model", True, f"served by Rasa at {settings.nlu.rasa_url}")
    stored = stored_hash(settings.nlu.model_dir)
    if stored is None:
        return Check("nlu model", False, f"none in {settings.nlu.model_dir}", "run `pontibot nlu train`")
    if stored != training_hash():
        return Check("nlu model", False, "older than the training data", "run `pontibot nlu train`")
    return Check("nlu model", True, f"trained on the current data ({settings.nlu.model_dir})")


def check_media(settings: Settings) -> Check:
    """The media directory exists (or can be made) and takes a file."""
    folder = settings.server.media_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "media", False, f"{folder} is not writable ({exc.strerror})", "fix server.media_dir's permissions"
        )
    return Check("media", True, f"{folder} is writable")


async def check_telegram(settings: Settings, http: httpx.AsyncClient) -> Check:
    """getMe with the token, and the webhook Telegram has (the URL is never printed with the token)."""
    assert settings.secrets.telegram_bot_token is not None
    token = settings.secrets.telegram_bot_token.get_secret_value()
    base = settings.telegram.base_url.rstrip("/")
    try:
        me = await http.get(f"{base}/bot{token}/getMe")
        if me.status_code in (401, 404):
            return Check(
                "telegram",
                False,
                "the Bot API refused the token",
                "get a valid TELEGRAM_BOT_TOKEN from @BotFather",
            )
        me.raise_for_status()
        hook = (await http.get(f"{base}/bot{token}/getWebhookInfo")).json().get("result", {})
    except (httpx.HTTPError, ValueError) as exc:
        return Check(
            "telegram",
            False,
            f"cannot reach {base} ({type(exc).__name__})",
            "check telegram.base_url and the network",
        )
    username = me.json().get("result", {}).get("username", "?")
    wanted = settings.telegram.webhook_url
    if wanted and hook.get("url") != wanted:
        return Check(
            "telegram",
            False,
            f"@{username}: the webhook is not {wanted}",
            "start `pontibot run` (it calls setWebhook)",
        )
    problem = hook.get("last_error_message")
    if problem:
        return Check(
            "telegram", False, f"@{username}: Telegram's last webhook error: {problem}", "check nginx and TLS"
        )
    return Check("telegram", True, f"@{username} ({'webhook' if wanted else 'polling'})")


async def check_twilio(settings: Settings, http: httpx.AsyncClient) -> Check:
    """Fetch the account with the credentials (Twilio answers 401 to wrong ones)."""
    sid = settings.secrets.twilio_account_sid or ""
    token = (
        settings.secrets.twilio_auth_token.get_secret_value() if settings.secrets.twilio_auth_token else ""
    )
    base = settings.twilio.api_base_url.rstrip("/")
    try:
        answer = await http.get(f"{base}/2010-04-01/Accounts/{sid}.json", auth=(sid, token))
    except httpx.HTTPError as exc:
        return Check(
            "whatsapp",
            False,
            f"cannot reach {base} ({type(exc).__name__})",
            "check twilio.api_base_url and the network",
        )
    if answer.status_code in (401, 403, 404):
        return Check(
            "whatsapp",
            False,
            "Twilio refused TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN",
            "copy both from the Twilio Console",
        )
    if answer.status_code != 200:
        return Check(
            "whatsapp",
            False,
            f"Twilio answered HTTP {answer.status_code}",
            "try again; see status.twilio.com",
        )
    status = answer.json().get("status", "?")
    ok = status == "active"
    return Check(
        "whatsapp", ok, f"account {status}, sender {settings.twilio.whatsapp_from}", "reactivate the account"
    )


async def check_backends(settings: Settings) -> list[Check]:
    """The permit back end answers a lookup; Open311 lists its services."""
    checks: list[Check] = []
    db = Database(settings.database_url)
    try:
        for name, build, probe in (
            ("permits", build_permits, _probe_permits),
            ("complaints", build_complaint_backend, _probe_complaints),
        ):
            try:
                backend = build(settings, db)
            except BackendConfigError as exc:
                checks.append(Check(name, False, str(exc), "see docs/config-examples/"))
                continue
            try:
                checks.append(await probe(name, backend))
            finally:
                closer = getattr(backend, "aclose", None)
                if closer is not None:
                    await closer()
    finally:
        await db.dispose()
    return checks


async def _probe_permits(name: str, backend: object) -> Check:
    label = getattr(backend, "name", "?")
    try:
        await backend.get(PROBE_PERMIT)  # type: ignore[attr-defined]
    except IntegrationError as exc:
        return Check(name, False, f"{label}: {exc}", "check permits.http.base_url and the licensing system")
    except Exception as exc:  # the demo back end on a database that is not there yet, say
        return Check(name, False, f"{label}: {type(exc).__name__}", "check the database and permits.*")
    return Check(name, True, f"{label} answers")


async def _probe_complaints(name: str, backend: object) -> Check:
    label = getattr(backend, "name", "?")
    if not isinstance(backend, Open311ComplaintBackend):
        return Check(name, True, f"{label} (complaints live in our database)")
    try:
        services = await backend.client.services()
    except IntegrationError as exc:
        return Check(name, False, f"{label}: {exc}", "check complaints.open311.base_url and its API key")
    return Check(name, True, f"{label}: {len(services)} services")


async def check_rasa(settings: Settings, http: httpx.AsyncClient) -> Check:
    """A Rasa NLU server answers ``/status``."""
    url = (settings.nlu.rasa_url or "").rstrip("/")
    try:
        answer = await http.get(f"{url}/status")
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        return Check(
            "rasa",
            False,
            f"cannot reach {url} ({type(exc).__name__})",
            "start the Rasa server or fix nlu.rasa_url",
        )
    return Check("rasa", True, f"{url} answers (model {answer.json().get('model_file', '?')})")


async def run_checks(settings: Settings, *, network: bool = True) -> list[Check]:
    """Every check that applies to ``settings``; without ``network`` only the local ones."""
    checks = [Check("config", True, "config file and environment are valid"), check_media(settings)]
    checks.append(check_model(settings))
    checks.append(await check_database(settings))
    if not network:
        return checks
    remote: list[Callable[[httpx.AsyncClient], Awaitable[Check]]] = []
    if settings.telegram_enabled:
        remote.append(lambda http: check_telegram(settings, http))
    if settings.whatsapp_enabled:
        remote.append(lambda http: check_twilio(settings, http))
    if settings.nlu.backend == "rasa":
        remote.append(lambda http: check_rasa(settings, http))
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        checks.extend(await asyncio.gather(*(check(http) for check in remote)))
    checks.extend(await check_backends(settings))
    return checks


@app.callback(invoke_without_command=True)
def doctor(
    config: ConfigOption = None,
    offline: bool = typer.Option(False, "--offline", help="Only the local checks (no network)."),
) -> None:
    """Check configuration, database, model, media and every configured dependency."""
    settings = settings_from(config)
    checks = asyncio.run(run_checks(settings, network=not offline))
    out = Console()
    for check in checks:
        out.print(check.line(), style=None if check.ok else "red", highlight=False, markup=False)
    failed = [check.name for check in checks if not check.ok]
    if failed:
        out.print(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}", style="red")
        raise typer.Exit(1)
    out.print(f"all {len(checks)} checks passed")


def preflight(settings: Settings) -> list[Check]:
    """The failed fast checks ``pontibot run`` makes before it starts (no network, no database; a
    missing model is no failure there: the server trains it)."""
    return [check for check in (check_media(settings),) if not check.ok]
