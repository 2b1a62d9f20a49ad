"""Who is looking at the page, and whether a form really comes from it.

The page uses the API's tokens and roles. In the loopback open mode (no token
created yet) everyone may do everything, as with the API. Otherwise the token
is given once on the login form and kept in a cookie that is HttpOnly (no
script can read it) and ``SameSite=Strict`` (no other site's page can make the
browser send it). Form POSTs are also refused unless their ``Origin`` (or,
failing that, ``Referer``) is this site: the second lock on the CSRF door, and
the only one in open mode, where there is no cookie at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from watcher.auth import Authenticator, Role, bearer

TOKEN_COOKIE = "kw_token"
TOKEN_MAX_AGE = 14 * 86400


@dataclass(frozen=True, slots=True)
class Visitor:
    """``role`` is None for someone without a valid token."""

    role: Role | None
    open_mode: bool = False

    @property
    def known(self) -> bool:
        return self.role is not None

    def can(self, needed: Role) -> bool:
        return self.role is not None and self.role.allows(needed)


def visitor(auth: Authenticator, headers: Mapping[str, str],
            cookies: Mapping[str, str]) -> Visitor:
    if auth.open_mode():
        return Visitor(Role.ADMIN, open_mode=True)
    token = bearer(headers.get("authorization")) or cookies.get(TOKEN_COOKIE)
    return Visitor(auth.role_of(token) if token else None)


def same_origin(headers: Mapping[str, str], public_url: str | None = None) -> bool:
    """True when the request names this site as its origin.

    "This site" is the Host the browser connected to, or the configured public
    URL (behind a proxy that rewrites Host). A request naming no origin at all
    is refused: browsers send ``Origin`` on every form POST.
    """
    source = headers.get("origin") or headers.get("referer")
    host = headers.get("host")
    if not source or source == "null":
        return False
    origin = urlsplit(source)
    if host and origin.netloc.lower() == host.lower():
        return True
    if public_url:
        public = urlsplit(public_url)
        return (origin.scheme, origin.netloc.lower()) == (public.scheme, public.netloc.lower())
    return False


def safe_next(target: str | None) -> str:
    """Only a path on this site is a place to return to after logging in."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target
