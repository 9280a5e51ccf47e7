"""Issue 16, finding 6: the nginx configuration documented in docs/DEPLOY.md keeps every staff-only
route of the real app (console, staff API, booth control, API docs, metrics) to the office network.

The test reads the documented ``server`` block, resolves each route of the app to the location nginx
would pick (exact match first, then the longest prefix; regular expressions are not used), and checks
that a route is public only if it is on the list of what residents and platforms need.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.routing import Mount

from bot.app import create_app
from bot.settings import load_settings
from tests.conftest import REPO

DEPLOY = REPO / "docs" / "DEPLOY.md"
PROXY_INCLUDE = "/etc/nginx/pontibot_proxy.conf"

# What residents and the platforms reach from the internet; everything else is for staff.
PUBLIC = {
    "/",
    "/static/",
    "/api/chat",
    "/api/chat/photo",
    "/api/chat/{session_id}/events",
    "/webhooks/telegram",  # from Telegram's networks only; the secret-token header is checked too
    "/webhooks/whatsapp",
    "/webhooks/whatsapp/status",
    "/booth",
    "/booth/stats",
    "/healthz",
    "/readyz",  # a load balancer's readiness probe: says only what the server still waits for
    "/favicon.ico",
}


@dataclass
class Location:
    """One ``location`` block: modifier (``=`` or none), path and its directives."""

    modifier: str
    path: str
    directives: list[list[str]] = field(default_factory=list)

    def matches(self, uri: str) -> bool:
        return uri == self.path if self.modifier == "=" else uri.startswith(self.path)

    @property
    def denies_all(self) -> bool:
        return ["deny", "all"] in self.directives

    @property
    def allowed(self) -> list[str]:
        return [d[1] for d in self.directives if d[0] == "allow"]

    @property
    def office_only(self) -> bool:
        """``deny all`` after allowing only private (office, VPN) or loopback networks."""
        return self.denies_all and all(ipaddress.ip_network(a).is_private for a in self.allowed)


def documented_server_block() -> str:
    """The ``server`` block of the documented nginx configuration that serves HTTPS."""
    blocks = re.findall(r"```nginx\n(.*?)```", DEPLOY.read_text(encoding="utf-8"), re.S)
    config = next(b for b in blocks if "listen 443" in b)
    start = config.index("server {", config.index("listen 80"))
    return config[start:]


def tokens(text: str) -> Iterator[str]:
    text = re.sub(r"#[^\n]*", "", text)
    yield from re.findall(r"[{};]|[^\s{};]+", text)


def locations(block: str) -> list[Location]:
    """Every location of the server block with its directives (nested blocks are not used)."""
    found: list[Location] = []
    words = list(tokens(block))
    i = 0
    while i < len(words):
        if words[i] == "location":
            head = words[i + 1 : words.index("{", i)]
            assert head[0] != "~" and head[0] != "~*", "regular-expression locations are not checked here"
            loc = Location(head[0], head[1]) if len(head) == 2 else Location("", head[0])
            i = words.index("{", i) + 1
            directive: list[str] = []
            while words[i] != "}":
                if words[i] == ";":
                    loc.directives.append(directive)
                    directive = []
                else:
                    directive.append(words[i])
                i += 1
            found.append(loc)
        i += 1
    return found


def chosen(locs: list[Location], uri: str) -> Location:
    """The location nginx uses for ``uri``: an exact match, else the longest matching prefix."""
    exact = [loc for loc in locs if loc.modifier == "=" and loc.matches(uri)]
    if exact:
        return exact[0]
    prefixes = [loc for loc in locs if loc.modifier in ("", "^~") and loc.matches(uri)]
    assert prefixes, f"no location serves {uri}"
    return max(prefixes, key=lambda loc: len(loc.path))


def app_paths(routes: list[Any]) -> Iterator[str]:
    """Every path of the app (included routers walked, mounts as ``/prefix/``)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from app_paths(route.original_router.routes)
        elif isinstance(route, Mount):
            yield route.path.rstrip("/") + "/"
        else:
            yield route.path


def sample_uri(path: str) -> str:
    """A concrete URI for a route path (``{param}`` filled in)."""
    return re.sub(r"\{[^}]+\}", "x1", path) + ("x.css" if path.endswith("/") and path != "/" else "")


APP = create_app(load_settings(REPO / "config.yml", environ={}))
ROUTES = sorted(set(app_paths(APP.routes)))
LOCATIONS = locations(documented_server_block())


def test_the_documented_config_is_read() -> None:
    assert {loc.path for loc in LOCATIONS} >= {"/", "/staff", "/api/staff", "/webhooks/telegram"}
    assert {"/staff", "/api/staff/handoffs", "/booth/advance", "/docs", "/openapi.json", "/metrics"} <= set(
        ROUTES
    )


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_is_public_only_if_residents_or_platforms_need_it(path: str) -> None:
    location = chosen(LOCATIONS, sample_uri(path))
    if path in PUBLIC:
        assert not location.office_only, (path, location)
    else:
        assert location.office_only, f"{path} is served by public location {location.path!r}"


@pytest.mark.parametrize(
    "uri", ["/staff", "/staff/", "/api/staff", "/api/staff/me", "/docs", "/openapi.json"]
)
def test_near_misses_of_staff_prefixes_are_not_public(uri: str) -> None:
    assert chosen(LOCATIONS, uri).office_only, uri


def test_every_proxied_location_passes_the_real_client_address() -> None:
    # server.forwarded_allow_ips trusts nginx; without X-Forwarded-For every resident would share
    # nginx's address and one per-address limit.
    for loc in LOCATIONS:
        if any(d[0] == "proxy_pass" for d in loc.directives):
            assert ["include", PROXY_INCLUDE] in loc.directives, loc.path
