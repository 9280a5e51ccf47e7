"""Who is calling the staff console: argon2 passwords, server-side sessions, CSRF, bearer token, roles.

Errors: :class:`LoginRequired` (no valid session or token: HTML pages redirect to the login page, the
JSON API answers 401) and :class:`Forbidden` (signed in, but the role or CSRF token does not allow it).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from bot.settings import Settings
from storage import staff_repository as staff_repo
from storage.staff_models import StaffUser

SESSION_COOKIE = "pontibot_staff"
IDLE = "idle"  # why a session cookie no longer signs in: the session was idle too long
LOGIN_CSRF_COOKIE = "pontibot_staff_login"
CSRF_HEADER = "x-csrf-token"
TOKEN_ACTOR = "api-token"  # noqa: S105 - a name in the audit log, not a secret
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the user name is unknown, so both cases take the same time. Made on the first
    login, not at import: an Argon2 hash costs ~0.1 s of every process's start-up otherwise."""
    return _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    """What a console account may do: agents work handoffs, admins also assign and read the audit log."""

    ADMIN = "admin"
    AGENT = "agent"


class LoginRequired(Exception):
    """No valid session cookie or bearer token."""


class Forbidden(Exception):
    """Signed in, but not allowed (role, CSRF token)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a signed-in account, or the deployment's API token (acts as an admin)."""

    username: str
    role: Role
    user_id: int | None = None
    display_name: str | None = None
    csrf_token: str | None = None
    token_hash: str | None = None
    via_token: bool = False

    @property
    def is_admin(self) -> bool:
        """True for admins (and the API token)."""
        return self.role is Role.ADMIN

    @property
    def name(self) -> str:
        """The name residents see on replies."""
        return self.display_name or self.username


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; compares against a dummy hash when there is no account."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def token_digest(token: str) -> str:
    """The SHA-256 of a session token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh unguessable token (session cookie, CSRF)."""
    return secrets.token_urlsafe(32)


def client_ip(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


# Removed from user names: every space and line break (Z*, tabs), controls and invisible format
# characters (zero-width space, bidi marks), so " sari", "sari\t" and "sa\u200bri" are one name.
_NOT_IN_NAMES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def normalize_username(raw: str) -> str:
    """The one spelling of a user name: NFKC, without any space or invisible character, casefolded.

    Used at every edge (the login form, ``pontibot staff``) for the lookup, the login throttle and the
    audit log alike; an empty result is not a name.
    """
    text = unicodedata.normalize("NFKC", raw)
    kept = "".join(c for c in text if not c.isspace() and unicodedata.category(c) not in _NOT_IN_NAMES)
    return unicodedata.normalize("NFKC", kept.casefold())


def throttle_key(username: str, ip: str) -> str:
    """Login failures are counted per normalised user name and address."""
    return f"{normalize_username(username)[:64]}|{ip}"


def same_token(given: str, expected: str) -> bool:
    """Constant-time equality of two tokens of any text (compared as UTF-8 bytes)."""
    return secrets.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def cookie_secure(settings: Settings) -> bool:
    """Cookies are Secure when the console is served over https."""
    return settings.server.public_url.lower().startswith("https://")


def bearer_matches(request: Request, settings: Settings) -> bool:
    """True when the request carries ``Authorization: Bearer <PONTIBOT_STAFF__API_TOKEN>``."""
    expected = settings.secrets.staff_api_token
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if expected is None or scheme.lower() != "bearer" or not given:
        return False
    return same_token(given.strip(), expected.get_secret_value())


async def principal_of(
    request: Request, session: AsyncSession, settings: Settings, now: datetime
) -> Principal | None:
    """The caller of ``request`` (token first, then session cookie), or None.

    A session idle longer than ``staff.idle_minutes`` is deleted (the caller is signed out) and
    ``request.state.staff_signed_out`` says :data:`IDLE`, so a page can tell the person why.
    """
    if bearer_matches(request, settings):
        return Principal(username=TOKEN_ACTOR, role=Role.ADMIN, via_token=True)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    digest = token_digest(token)
    found = await staff_repo.live_staff_session(session, token_hash=digest, now=now)
    if found is None:
        return None
    staff_session, user = found
    idle = now - staff_session.last_seen_at
    if idle > timedelta(minutes=settings.staff.idle_minutes):
        await staff_repo.delete_staff_session(session, token_hash=digest)
        request.state.staff_signed_out = IDLE
        return None
    # Touched at most once a minute: a page that polls does not write on every request.
    if idle > timedelta(minutes=1):
        staff_session.last_seen_at = now
    return principal_for(user, csrf_token=staff_session.csrf_token, token_hash=digest)


def principal_for(
    user: StaffUser, *, csrf_token: str | None = None, token_hash: str | None = None
) -> Principal:
    """The principal of a signed-in account."""
    return Principal(
        username=user.username,
        role=Role(user.role),
        user_id=user.id,
        display_name=user.display_name,
        csrf_token=csrf_token,
        token_hash=token_hash,
    )


def check_csrf(principal: Principal, given: str | None) -> None:
    """Refuse a state-changing request from a session without the session's CSRF token."""
    if principal.via_token:
        return
    if not given or principal.csrf_token is None or not same_token(given, principal.csrf_token):
        raise Forbidden("csrf")


def require_admin(principal: Principal) -> None:
    """Refuse unless the caller is an admin."""
    if not principal.is_admin:
        raise Forbidden("role")
