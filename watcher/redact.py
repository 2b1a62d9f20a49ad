"""Secret masking for everything that leaves the process: logs, CLI, API, pages.

Apprise URLs carry their tokens in the path, the userinfo and the query, so an
URL is reduced to ``scheme://host/…`` form with every secret-looking part
masked. Secret values substituted from the environment are also registered here
and masked wherever they appear verbatim. This module is the one place holding
that global registry.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "****"

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,20})://([^\s'\"<>]+)")
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:key|token|secret|password|pass|pwd|access_token|webhook|sign|auth)[^=&]*=)"
    r"[^&\s]+")
# kpi-watch's own pseudo-URLs (console://stdout, memory://name): nothing to hide.
_NO_SECRETS = frozenset({"console", "memory"})
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Mask ``value`` verbatim from now on (values shorter than 4 chars are ignored)."""
    if len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact_url(url: str) -> str:
    """``slack://T000/B000/XXXX`` -> ``slack://****``; keeps scheme and a plain host."""
    m = _URL.match(url.strip())
    if not m:
        return redact_text(url)
    scheme, rest = m.group(1), m.group(2)
    if scheme.lower() in _NO_SECRETS or scheme.lower().startswith("sqlite"):
        return url.strip()  # a file path holds no secret, and says which database this is
    if "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
        userinfo = f"{MASK}@"
    else:
        userinfo = ""
    host, _, path = rest.partition("/")
    host = host.split("?", 1)[0]
    if scheme.lower().startswith("postgres"):  # the database's name is no secret either
        return f"{scheme}://{userinfo}{host}/{path.split('?', 1)[0]}"
    if scheme.lower() in ("http", "https", "json", "jsons", "xml", "xmls", "form", "forms",
                          "mailto", "mailtos"):
        tail = f"/{MASK}" if path else ""
        return f"{scheme}://{userinfo}{host}{tail}"
    # Token-bearing schemes put secrets in the "host" part too (slack://T/B/C, wecombot://KEY).
    return f"{scheme}://{MASK}"


def redact_text(text: str) -> str:
    return _mask_query(_URL.sub(lambda m: redact_url(m.group(0)), _mask_registered(text)))


def mask_secrets(text: str) -> str:
    """Only the secrets in ``text``: registered values and secret-looking query
    parameters, leaving URLs readable (a request shown as it would be sent)."""
    return _mask_query(_mask_registered(text))


def _mask_query(text: str) -> str:
    return _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, text)


def _mask_registered(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any) -> Any:
    """Deep-redact strings inside dicts, lists and tuples."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value
