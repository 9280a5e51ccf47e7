"""Settings: behaviour from config.yml, overridable as PONTIBOT_<SECTION>__<KEY>; secrets from env.

Loaded and validated once at start (:func:`load_settings`) and passed down; nothing below ``bot`` reads
the environment. An invalid value raises :class:`ConfigError` naming the key and what is expected.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from bot.staff.hours import StaffHours
from integrations.base import PermitStage

DEFAULT_CONFIG = Path("config.yml")
ENV_PREFIX = "PONTIBOT_"
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeme", "secret", "xxx", "todo", "your-token-here"})
_HHMM_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


_ENVIRON: ContextVar[Mapping[str, str]] = ContextVar("pontibot_environ")


class _GivenEnvSource(EnvSettingsSource):
    """The environment source, reading the mapping given to :func:`load_settings`."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = {
            k: v
            for k, v in _ENVIRON.get(os.environ).items()
            if k.upper() not in {"PONTIBOT_CONFIG", "PONTIBOT_STAFF__API_TOKEN"}
        }
        return parse_env_vars(environ, self.case_sensitive, self.env_ignore_empty, None)


class ConfigError(Exception):
    """The configuration cannot be used; the message names each bad key and what it expects."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoggingSettings(_Section):
    """How log lines look: ``text`` for people, ``json`` (one object per line) for a log collector."""

    format: Literal["text", "json"] = "text"


class ServerSettings(_Section):
    """Where the HTTP server listens and how the outside world reaches it."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    media_max_bytes: int = Field(10_000_000, ge=1024)
    media_dir: Path = Path("var/media")
    # Per-resident flood control (bot/conversation/flood.py): messages per minute, and a burst.
    resident_messages_per_minute: float = Field(30.0, gt=0)
    resident_burst: int = Field(20, ge=1)
    # Proxies (nginx) whose X-Forwarded-For / X-Real-IP name the client: addresses or networks,
    # comma-separated, or "*" (bot/web/http.py ClientAddressMiddleware; uvicorn's default).
    forwarded_allow_ips: str = "127.0.0.1"
    # Per client address (bot/conversation/client_limits.py): new web chat sessions (a token bucket, sized for
    # a booth's phones behind one Wi-Fi or a carrier's NAT), and handoffs in a window before they are
    # marked suspicious for staff (urgent ones beyond their own small number open as not urgent).
    address_new_sessions_per_minute: float = Field(30.0, gt=0)
    address_new_sessions_burst: int = Field(30, ge=1)
    address_handoffs: int = Field(20, ge=1)
    address_urgent_handoffs: int = Field(3, ge=1)
    address_window_minutes: int = Field(10, ge=1)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network; expected e.g. 127.0.0.1,10.0.0.0/8 or *"
                ) from None
        return value


class DatabaseSettings(_Section):
    """Database URL (SQLite by default, PostgreSQL in production) and pool size."""

    url: str = "sqlite+aiosqlite:///var/pontibot.db"
    pool_size: int = Field(10, ge=1, le=200)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "expected an async SQLAlchemy URL: sqlite+aiosqlite:///PATH or "
                "postgresql+asyncpg://USER@HOST/DB"
            )
        return value


class NluSettings(_Section):
    """Which parser understands residents, and when it is not sure enough."""

    backend: Literal["embedded", "rasa"] = "embedded"
    rasa_url: str | None = None
    threshold: float = Field(0.3, ge=0.0, le=1.0)
    confirm_threshold: float = Field(0.5, ge=0.0, le=1.0)
    record_threshold: float = Field(0.7, ge=0.0, le=1.0)
    ambiguity_margin: float = Field(0.15, ge=0.0, le=1.0)
    model_dir: Path = Path("var/nlu")
    timeout: float = Field(5.0, gt=0)


class TelegramSettings(_Section):
    """Telegram Bot API client; on when TELEGRAM_BOT_TOKEN is set."""

    mode: Literal["polling", "webhook"] = "polling"
    base_url: str = "https://api.telegram.org"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    staff_group_id: int | None = None
    bot_username: str | None = None
    poll_timeout: int = Field(30, ge=0, le=50)

    @field_validator("webhook_secret")
    @classmethod
    def _secret_token_charset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("expected 1-256 characters A-Z, a-z, 0-9, _ or - (Telegram's secret_token)")
        return value

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook_url:
            raise ValueError(
                "mode is webhook but webhook_url is empty: set the public HTTPS URL of "
                "POST /webhooks/telegram (telegram.webhook_url), or use mode: polling"
            )
        return self


class TwilioSettings(_Section):
    """WhatsApp through Twilio; on when TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are set."""

    whatsapp_from: str | None = None
    api_base_url: str = "https://api.twilio.com"
    webhook_url: str | None = None
    status_callback_url: str | None = None
    templates: dict[str, str] = Field(default_factory=dict)
    messages_per_second: float = Field(1.0, gt=0)
    timeout: float = Field(15.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    retry_backoff_seconds: float = Field(1.0, ge=0)


class PermitHttpSettings(_Section):
    """A licensing system's HTTP/JSON API: paths, fields and status vocabulary."""

    base_url: str | None = None
    auth_header: str = "Authorization"
    auth_value: SecretStr | None = None
    get_path: str = "/permits/{number}"
    changes_path: str = "/permits/changes"
    changes_param: str = "since"  # query parameter carrying the cursor
    changes_items: str = "items"  # dotted path of the list in the changes answer
    changes_cursor: str = "cursor"  # dotted path of the next cursor in the changes answer
    fields: dict[str, str] = Field(default_factory=dict)
    statuses: dict[str, str] = Field(default_factory=dict)
    types: dict[str, str] = Field(default_factory=dict)  # their permit type word -> ours (pbg, slf, …)
    timeout: float = Field(10.0, gt=0)

    @field_validator("statuses")
    @classmethod
    def _known_stages(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(v for v in value.values() if v not in set(PermitStage))
        if unknown:
            raise ValueError(f"unknown stages {unknown}; use {', '.join(PermitStage)}")
        return value


class PermitsSettings(_Section):
    """Permit back end: the seeded demo system or a licensing system over HTTP."""

    backend: Literal["demo", "http"] = "demo"
    number_pattern: str = r"[A-Z]{2,6}-\d{4}-\d{3,6}"
    demo_seed: Path | None = None
    http: PermitHttpSettings = Field(default_factory=PermitHttpSettings)

    @field_validator("number_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class Open311Settings(_Section):
    """An Open311 GeoReport v2 endpoint and how our categories map to its service codes."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    jurisdiction_id: str | None = None
    service_codes: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(10.0, gt=0)
    media_base_url: str | None = None  # public URL prefix of stored photos, sent as media_url
    token_attempts: int = Field(3, ge=1, le=20)  # polls of tokens/{token}.json before leaving it to the job


class ComplaintsSettings(_Section):
    """Complaint back end: kept in our database or sent to an Open311 server."""

    backend: Literal["local", "open311"] = "local"
    open311: Open311Settings = Field(default_factory=Open311Settings)
    sla_working_days: dict[str, int] = Field(default_factory=dict)
    agencies: dict[str, str] = Field(default_factory=dict)  # category -> OPD it is forwarded to
    duplicate_radius_m: float = Field(200.0, ge=0)
    submit_interval_seconds: float = Field(30.0, gt=0)  # how often pending complaints are filed again


class NotificationsSettings(_Section):
    """When and how fast pushed messages go out."""

    quiet_hours: str = "21:00-06:00"
    rates: dict[str, float] = Field(
        default_factory=lambda: {"telegram_global": 30.0, "telegram_per_chat": 1.0, "whatsapp": 1.0}
    )
    max_attempts: int = Field(8, ge=1, le=100)
    poll_interval_seconds: float = Field(60.0, gt=0)  # how often permits and complaints are polled
    enabled: bool = True  # run the scheduler (polls, outbox dispatch) in this process when it leads
    dispatch_interval_seconds: float = Field(2.0, gt=0)  # the outbox sweep (other processes' rows)
    claim_lease_seconds: float = Field(30.0, ge=1)  # a claimed row is retried when its lease lapses
    batch_size: int = Field(100, ge=1, le=10_000)  # rows claimed at once
    concurrency: int = Field(32, ge=1, le=1000)  # sends in flight at once
    backoff_base_seconds: float = Field(5.0, gt=0)  # first retry after a failure (doubles, jittered)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    misfire_grace_seconds: int = Field(30, ge=1)  # a job late by more than this is skipped
    leader_retry_seconds: float = Field(10.0, gt=0)  # how often a non-leader tries to take over
    stop_grace_seconds: float = Field(10.0, ge=0)  # sends in flight may finish this long at shutdown

    @field_validator("quiet_hours")
    @classmethod
    def _hh_mm_range(cls, value: str) -> str:
        if value and not _HHMM_RANGE.match(value):
            raise ValueError("expected HH:MM-HH:MM in WIB, e.g. 21:00-06:00, or empty for none")
        return value

    def quiet_window(self) -> tuple[time, time] | None:
        """The quiet-hours window as (start, end) local times, or None when disabled."""
        match = _HHMM_RANGE.match(self.quiet_hours)
        if not match:
            return None
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return time(h1, m1), time(h2, m2)


class StaffSettings(_Section):
    """When people answer handoffs, and the console's session settings."""

    hours: str = "Mon-Fri 07:30-16:00"
    closed_on_holidays: bool = True
    api_token: SecretStr | None = None
    session_hours: int = Field(12, ge=1, le=24 * 30)
    login_max_failures: int = Field(5, ge=1, le=100)
    login_lock_minutes: int = Field(15, ge=1, le=24 * 60)
    idle_minutes: int = Field(30, ge=1, le=24 * 60)  # a console session unused this long is signed out

    @field_validator("hours")
    @classmethod
    def _readable_hours(cls, value: str) -> str:
        StaffHours.parse(value)  # HoursError is a ValueError: pydantic reports it under staff.hours
        return value

    def schedule(self, timezone: str = "Asia/Pontianak") -> StaffHours:
        """The parsed staff hours (WIB), closed on public holidays unless configured otherwise."""
        return StaffHours.parse(self.hours, timezone=timezone, closed_on_holidays=self.closed_on_holidays)


class PrivacySettings(_Section):
    """How long transcripts and media are kept (UU No. 27/2022), and how often the purge runs."""

    retention_days: int = Field(180, ge=1)
    retention_interval_minutes: int = Field(60, ge=1)
    media_grace_minutes: int = Field(60, ge=1)  # an unreferenced photo younger than this is kept


class DemoSettings(_Section):
    """Car Free Day booth mode."""

    enabled: bool = False
    idle_reset_minutes: int = Field(30, ge=1)
    lan_url: str | None = None


class ContactSettings(_Section):
    """Numbers and links the bot gives residents."""

    emergency_numbers: dict[str, str] = Field(
        default_factory=lambda: {"Darurat": "112", "Pemadam Kebakaran": "113", "Ambulans": "118"}
    )
    whatsapp_line: str | None = None
    lapor_url: str = "https://www.lapor.go.id"


class Secrets(_Section):
    """Secrets, read from the environment only (never from config.yml)."""

    telegram_bot_token: SecretStr | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    database_url: str | None = None
    staff_api_token: SecretStr | None = None


class Settings(BaseSettings):
    """Everything the program needs to know about its deployment, validated once."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    timezone: str = "Asia/Pontianak"
    default_language: Literal["id", "en"] = "id"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    nlu: NluSettings = Field(default_factory=NluSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    permits: PermitsSettings = Field(default_factory=PermitsSettings)
    complaints: ComplaintsSettings = Field(default_factory=ComplaintsSettings)
    notifications: NotificationsSettings = Field(default_factory=NotificationsSettings)
    staff: StaffSettings = Field(default_factory=StaffSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    contact: ContactSettings = Field(default_factory=ContactSettings)
    secrets: Secrets = Field(default_factory=Secrets, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over config.yml (passed in as init values).
        return (_GivenEnvSource(settings_cls), init_settings)

    @model_validator(mode="after")
    def _one_poller(self) -> Settings:
        # Telegram hands each update to one getUpdates caller; several workers polling would fight (409).
        polling = self.telegram.mode == "polling" and not self.telegram.webhook_url
        if self.server.workers > 1 and self.telegram_enabled and polling:
            raise ValueError(
                f"server.workers is {self.server.workers} but telegram.mode is polling: only one process "
                "may poll Telegram; set telegram.mode: webhook with telegram.webhook_url (the public HTTPS "
                "URL of POST /webhooks/telegram), or run one worker"
            )
        return self

    @property
    def database_url(self) -> str:
        """DATABASE_URL from the environment when set, else database.url."""
        return self.secrets.database_url or self.database.url

    @property
    def telegram_enabled(self) -> bool:
        """True when a Telegram bot token is configured."""
        return self.secrets.telegram_bot_token is not None

    @property
    def whatsapp_enabled(self) -> bool:
        """True when Twilio credentials and a WhatsApp sender are configured."""
        return bool(
            self.secrets.twilio_account_sid and self.secrets.twilio_auth_token and self.twilio.whatsapp_from
        )


def _secret_from_env(environ: dict[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    if value.lower() in PLACEHOLDER_SECRETS:
        raise ConfigError(f"{name}: holds a placeholder ({value!r}); set the real secret or unset it")
    return value


def _read_secrets(environ: dict[str, str]) -> Secrets:
    return Secrets(
        telegram_bot_token=_secret_from_env(environ, "TELEGRAM_BOT_TOKEN"),  # type: ignore[arg-type]
        twilio_account_sid=_secret_from_env(environ, "TWILIO_ACCOUNT_SID"),
        twilio_auth_token=_secret_from_env(environ, "TWILIO_AUTH_TOKEN"),  # type: ignore[arg-type]
        database_url=_secret_from_env(environ, "DATABASE_URL"),
        staff_api_token=_secret_from_env(environ, "PONTIBOT_STAFF__API_TOKEN"),  # type: ignore[arg-type]
    )


def _closest_key(loc: Sequence[Any]) -> str:
    """The hint "; did you mean server.port?" for a mistyped key, from its section's fields."""
    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        section = field.annotation if field is not None else None
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            return ""
        model = section
    closest = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    prefix = ".".join(str(part) for part in loc[:-1])
    return f"; did you mean {prefix + '.' if prefix else ''}{closest[0]}?" if closest else ""


def _describe(errors: list[Any], source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in errors:
        key = ".".join(str(part) for part in err["loc"])
        env = ENV_PREFIX + "__".join(str(part).upper() for part in err["loc"])
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        if err.get("type") == "extra_forbidden":
            lines.append(f"  {key}: no such setting ({err['msg']}){got_text}{_closest_key(err['loc'])}")
            continue
        lines.append(f"  {key}: {err['msg']}{got_text} — set it in the config file or {env}")
    return "\n".join(lines)


def load_settings(
    path: Path | None = None, environ: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Read config.yml (or PONTIBOT_CONFIG / ``path``), apply the environment, validate everything.

    Raises:
        ConfigError: the file is missing or unreadable, or a value is invalid.
    """
    env = dict(os.environ if environ is None else environ)
    config_path = path or Path(env.get("PONTIBOT_CONFIG") or DEFAULT_CONFIG)
    data: dict[str, Any] = {}
    if config_path.exists():
        try:
            loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {config_path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{config_path}: expected a mapping of sections at the top level")
        data = loaded or {}
    elif path is not None or "PONTIBOT_CONFIG" in env:
        raise ConfigError(f"config file not found: {config_path}")
    if "secrets" in data:
        raise ConfigError(f"{config_path}: secrets belong in the environment, not in the file")
    data = _deep_merge(data, overrides)
    _refuse_unknown_variables(env)
    data["secrets"] = _read_secrets(env)
    token = _ENVIRON.set(env)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors(), str(config_path))) from None
    finally:
        _ENVIRON.reset(token)


# PONTIBOT_* variables that are not settings: the config file's path, a secret, and the test suite's
# and benchmarks' own (PONTIBOT_TEST_*, PONTIBOT_BENCH_*).
NOT_SETTINGS = frozenset({"CONFIG", "STAFF__API_TOKEN"})
RESERVED_PREFIXES = ("TEST_", "BENCH_")


def _refuse_unknown_variables(env: Mapping[str, str]) -> None:
    """A ``PONTIBOT_*`` variable that names no setting is a typo: stop, naming it and the closest key.

    Keys inside a known section are checked by the sections themselves (``extra="forbid"``).
    """
    known = {name.upper() for name in Settings.model_fields if name != "secrets"}
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX.upper()):
            continue
        rest = upper[len(ENV_PREFIX) :]
        if rest in NOT_SETTINGS or rest.startswith(RESERVED_PREFIXES):
            continue
        head = rest.split("__", 1)[0]
        if head in known:
            continue
        closest = difflib.get_close_matches(head, sorted(known), n=1)
        hint = f"; did you mean {ENV_PREFIX}{closest[0]}{'__…' if '__' in rest else ''}?" if closest else ""
        raise ConfigError(
            f"{name}: no such setting ({head.lower()!r} is not a section or key of config.yml){hint}"
        )


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
