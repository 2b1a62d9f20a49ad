"""Which requests reach the daemon at all: addressed to us, and not a write from another site.

One ASGI middleware in front of every route (API, page, probes), before a body is
read or a token looked up:

- **Host.** DNS rebinding points an attacker's name at 127.0.0.1, making the
  attacker's page "same origin" with the daemon; the browser still sends the
  attacker's name as ``Host``. So a request whose ``Host`` is not one of ours is
  refused with 421 Misdirected Request. Ours: the loopback names, ``public_url``'s
  host, the bound address (unless it is a wildcard), the IP address the connection
  arrived on (a Kubernetes probe sends the pod IP; an IP literal cannot be rebound),
  and the names listed in ``allowed_hosts``.
- **Cross-site writes.** A page on another site can make a browser send a "simple"
  POST (``text/plain``, a form, no ``Content-Type``) without asking first (no CORS
  preflight). An API write whose ``Origin`` (or ``Referer``) names another site is
  refused with 403 in every mode. In the loopback open mode, where no token stands
  in the way, a POST naming no origin of ours must also carry a content type the
  API reads that browsers never send cross-site without a preflight (which this
  daemon never grants): JSON, JSON Lines, CSV or XLSX. Other methods (PUT, DELETE)
  always need a preflight. The page's forms check their own origin (watcher/web).
- **Body size.** The body is counted as it is read, whether it came with a
  ``Content-Length`` or chunked, and refused with 413 at ``max_body_bytes``: nothing
  beyond is read, so a huge upload costs no memory. (Starlette's own limit answers
  a bare "Content Too Large" for a declared length; ours names the limit.)
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watcher.auth import Authenticator, is_loopback
from watcher.web.access import same_origin

WILDCARDS = {"", "0.0.0.0", "::", "*"}
CLOSE = (b"connection", b"close")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# What the API reads; none is a CORS-safelisted type, so a browser preflights it.
PREFLIGHTED_TYPES = {
    "application/json", "application/x-ndjson", "application/jsonl", "text/csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
OPEN_MODE_HINT = ("in the open mode (no token created yet) a POST needs a Content-Type the "
                  "API reads (application/json, application/x-ndjson, text/csv or XLSX) or "
                  "an Origin of this site; with curl add -H 'Content-Type: application/json'")


def host_name(header: str) -> str:
    """The host part of a ``Host`` header, lower case: ``[::1]:8080`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _normal(name: str) -> str:
    """An IP address in its one spelling, a name in lower case without the final dot."""
    address = _ip(name)
    return str(address) if address is not None else name.lower().rstrip(".")


class HostPolicy:
    """The names this daemon answers to (``allowed_hosts`` entries may be ``*.domain``)."""

    def __init__(self, *, bound: str, public_url: str | None, allowed: Iterable[str]) -> None:
        names = {_normal(name) for name in allowed if not name.startswith("*.")}
        self.suffixes = tuple(name[1:].lower() for name in allowed if name.startswith("*."))
        if public_url and (public := urlsplit(public_url).hostname):
            names.add(_normal(public))
        if bound.strip("[]") not in WILDCARDS:
            names.add(_normal(bound.strip("[]")))
        self.names = frozenset(names)

    def allows(self, header: str | None, local_address: str | None = None) -> bool:
        if not header:
            return False
        name = _normal(host_name(header))
        if not name:
            return False
        address = _ip(name)
        if is_loopback(name) or name in self.names or name.endswith(self.suffixes):
            return True
        # An IP literal the connection really arrived on (probes and scrapers by pod IP).
        return (address is not None and local_address is not None
                and address == _ip(local_address))


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes an HTTPException raised while reading a
    body through as it is, so the handler answers 413 wherever the body was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is over the limit of {limit} bytes (setting "
                              "max_body_bytes; docs/limits.md)")


class SiteGuard:
    """The ASGI middleware applying :class:`HostPolicy`, the cross-site write rules and
    the body limit."""

    def __init__(self, app: ASGIApp, *, hosts: HostPolicy, auth: Authenticator,
                 public_url: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.hosts = hosts
        self.auth = auth
        self.public_url = public_url
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        server = scope.get("server")
        local = str(server[0]) if server else None
        if not self.hosts.allows(headers.get("host"), local):
            await _refuse(send, 421, f"this daemon does not answer to the host "
                                     f"'{headers.get('host', '')[:100]}'; add it to "
                                     "allowed_hosts if it is really ours")
            return
        refusal = await self._write_refusal(scope, headers)
        if refusal is not None:
            await _refuse(send, 403, refusal)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(send, 413, BodyTooLarge(self.max_body_bytes).detail)
            return
        await self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        read, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal read, over
            message = await receive()
            read += len(message.get("body", b""))
            if read > self.max_body_bytes:
                over = True
                raise BodyTooLarge(self.max_body_bytes)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if over:  # the server closes the connection instead of reading the rest
                    message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except BodyTooLarge as exc:  # read outside a route (no handler met it)
            if started:
                raise
            await _refuse(send, 413, exc.detail)

    async def _write_refusal(self, scope: Scope, headers: Headers) -> str | None:
        method = scope["method"]
        if method in SAFE_METHODS or not scope["path"].startswith("/v1/"):
            return None
        source = headers.get("origin") or headers.get("referer")
        if source:
            if same_origin(headers, self.public_url):
                return None
            return f"a write from another site ({source[:100]}) is refused"
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if method != "POST" or kind in PREFLIGHTED_TYPES:
            return None
        if await to_thread.run_sync(self.auth.open_mode):
            return OPEN_MODE_HINT
        return None


async def _refuse(send: Send, status: int, detail: str) -> None:
    """Answer without reading the body; the connection closes rather than drain it."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), CLOSE]})
    await send({"type": "http.response.body", "body": body})
