"""``watcher channels test --dry-run``: the exact requests apprise would send, not sent.

The channel renders and apprise builds each request as for a real send; only the
last step is replaced: ``requests``' transport (every HTTP service: WeCom,
DingTalk, Feishu, Slack, webhooks...) and ``smtplib`` (email) record what they
were handed and answer as a service that accepted it. So what is printed is
what would have gone on the wire, byte for byte, with the secrets masked:
tokens apprise declares private and ``${ENV}`` values (watcher/redact.py),
secret-looking query parameters and credential headers.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import requests
from requests.adapters import HTTPAdapter

from watcher.redact import MASK, mask_secrets

# What a service answers when it accepts: each bot checks its own field.
ACCEPTED = {"errcode": 0, "errmsg": "ok", "code": 0, "msg": "success", "StatusCode": 0,
            "ok": True}
SECRET_HEADERS = ("authorization", "cookie", "x-api-key", "x-auth-token", "api-key")


@dataclass
class Request:
    """One request as it would have left: method, target, headers, body."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    def lines(self) -> list[str]:
        """Masked, printable: the request line, the headers, a blank line, the body as
        it would be sent; a JSON body follows again, readable (``\\uXXXX`` decoded,
        indented), after a ``# readable`` line."""
        out = [f"{self.method} {mask_secrets(self.url)}"]
        for name, value in self.headers.items():
            shown = MASK if name.lower() in SECRET_HEADERS else mask_secrets(value)
            out.append(f"{name}: {shown}")
        out += ["", mask_secrets(self.body)]
        try:
            readable = json.dumps(json.loads(self.body), ensure_ascii=False, indent=2)
        except ValueError:
            return out
        return [*out, "", "# readable", mask_secrets(readable)]


def _text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return str(body)


@contextmanager
def capture() -> Iterator[list[Request]]:
    """Within the block, nothing leaves the process: requests are recorded instead."""
    captured: list[Request] = []

    def send(_adapter: HTTPAdapter, request: requests.PreparedRequest,
             *_args: Any, **_kwargs: Any) -> requests.Response:
        captured.append(Request(str(request.method), str(request.url),
                                {k: str(v) for k, v in request.headers.items()},
                                _text(request.body)))
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(ACCEPTED).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = str(request.url)
        response.request = request
        return response

    class SMTP:
        """Stands in for smtplib.SMTP / SMTP_SSL: records the message handed over."""

        def __init__(self, host: str = "", port: int = 0, *_args: Any, **_kwargs: Any):
            self.target = f"smtp://{host}:{port}"

        def starttls(self, *_args: Any, **_kwargs: Any) -> None: ...

        def login(self, *_args: Any, **_kwargs: Any) -> None: ...

        def quit(self) -> None: ...

        def sendmail(self, sender: str, recipients: list[str], message: str,
                     *_args: Any) -> dict[str, Any]:
            captured.append(Request("SMTP", self.target,
                                    {"MAIL FROM": sender, "RCPT TO": ", ".join(recipients)},
                                    _text(message)))
            return {}

    with mock.patch.object(HTTPAdapter, "send", send), \
            mock.patch.object(smtplib, "SMTP", SMTP), mock.patch.object(smtplib, "SMTP_SSL", SMTP):
        yield captured
