"""apprise plugins that tell the truth about a bot's reply, and a json:// that carries the alert.

Why subclasses: apprise's WeCom and DingTalk plugins (2.3.0) judge a send by
the HTTP status alone, but both services answer HTTP 200 with
``{"errcode": 40058, "errmsg": "..."}`` when they refuse a message (too long,
bad key, keyword missing, too fast). apprise then reports success and the
alert is silently lost. The alternatives were worse: a ``requests`` response
hook cannot be attached to apprise's module-level ``requests.post`` calls
without patching ``requests`` for the whole process, and reading apprise's log
lines would make correctness depend on log wording. So these subclasses keep
everything apprise does well (URL parsing incl. native webhook URLs, tokens,
signing, proxies, TLS verification, timeouts, throttling) and replace only
``send``: build the payload, post it, and read the reply body.

Each instance belongs to one URL of one channel and is used under that
channel's lock, so ``last_refusal`` (the service's own error code and
message) can be read right after a send.

Feishu and Lark need no subclass: apprise 2.3.0 already checks their ``code``
(see the tests, which pin that behaviour).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests
from apprise.common import NotifyFormat, NotifyType
from apprise.plugins.custom_json import NotifyJSON
from apprise.plugins.dingtalk import NotifyDingTalk
from apprise.plugins.wecombot import NotifyWeComBot

from watcher.channels.limits import limit_for, truncate


@dataclass(frozen=True, slots=True)
class Refusal:
    """A service's "no" inside an HTTP 200 (or a non-200 status)."""

    code: int | str
    message: str
    retryable: bool
    http: bool = False  # the HTTP status said no, not the reply body

    def reason(self, service: str) -> str:
        if self.http:
            return f"{service} answered HTTP {self.code}"
        return f"{service} errcode {self.code}: {self.message}"


# Refusals that pass with time: rate limits and "system busy". Anything else
# (bad key, content rejected, keyword/IP/signature check) fails again the same way.
_TRANSIENT = {
    "wecombot": {-1, 45009, 45033},
    "dingtalk": {-1, 130101, 410100, 660026},
}


def _reply_error(response: requests.Response) -> tuple[int | str, str] | None:
    """``(errcode, errmsg)`` when the JSON reply says the message was refused."""
    try:
        reply = response.json()
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    code = reply.get("errcode", reply.get("code", 0))
    if code in (0, "0", None):
        return None
    message = reply.get("errmsg") or reply.get("msg") or "refused"
    return code, str(message)


def post_checked(plugin: Any, url: str, payload: dict[str, Any], *,
                 params: dict[str, str] | None = None) -> bool:
    """POST ``payload`` as UTF-8 JSON; a non-200 or a non-zero errcode is a failure.

    Sets ``plugin.last_refusal`` and logs a WARNING on the plugin's logger
    (which apprise captures into the per-service result). Exception texts of
    ``requests`` contain the URL, hence its key, so only their type is logged.
    """
    service = plugin.secure_protocol
    plugin.last_refusal = None
    plugin.throttle()  # before any I/O, as every apprise plugin does
    try:
        response = requests.post(
            url, data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"User-Agent": plugin.app_id,
                     "Content-Type": "application/json; charset=utf-8"},
            params=params, verify=plugin.verify_certificate,
            timeout=plugin.request_timeout, allow_redirects=plugin.redirects)
    except requests.RequestException as exc:
        plugin.logger.warning("%s: connection error (%s)", plugin.service_name,
                              type(exc).__name__)
        return False
    if response.status_code != requests.codes.ok:
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        plugin.last_refusal = Refusal(response.status_code, response.reason or "", retryable,
                                      http=True)
        plugin.logger.warning("%s answered HTTP %s", plugin.service_name,
                              response.status_code)
        return False
    error = _reply_error(response)
    if error is not None:
        code, message = error
        plugin.last_refusal = Refusal(code, message, code in _TRANSIENT.get(service, set()))
        plugin.logger.warning("%s refused the message: errcode %s: %s", plugin.service_name,
                              code, message)
        return False
    plugin.logger.info("Sent %s notification.", plugin.service_name)
    return True


class WeComBot(NotifyWeComBot):  # type: ignore[no-untyped-call]
    """WeCom group bot: markdown (default) or text, byte-limited, errcode checked.

    apprise's plugin only sends ``text`` and limits it to 2048 characters;
    WeCom counts 2048 BYTES for text and 4096 for markdown, so the content is
    cut on a UTF-8 boundary here too (the channel already cut it with a
    localized marker; this is the last line of defence).
    """

    notify_format = (NotifyFormat.MARKDOWN, NotifyFormat.TEXT)  # type: ignore[assignment]
    body_maxlen = 4096
    last_refusal: Refusal | None = None

    def send(self, body: str, title: str = "", notify_type: NotifyType = NotifyType.INFO,
             body_format: NotifyFormat | None = None, **kwargs: Any) -> bool:
        msgtype = "markdown" if body_format == NotifyFormat.MARKDOWN else "text"
        content = f"{title}\n{body}" if title else body
        content = truncate(content, limit_for("wecombot", msgtype))
        return post_checked(self, self.api_url,
                            {"msgtype": msgtype, msgtype: {"content": content}})


class DingTalkBot(NotifyDingTalk):  # type: ignore[no-untyped-call]
    """DingTalk custom robot: markdown (title = preview line) or text, errcode checked.

    Unlike apprise's, the markdown ``text`` is sent as rendered: our templates
    put the heading where they want it.
    """

    notify_format = (NotifyFormat.MARKDOWN, NotifyFormat.TEXT)
    last_refusal: Refusal | None = None

    def send(self, body: str, title: str = "", notify_type: NotifyType = NotifyType.INFO,
             body_format: NotifyFormat | None = None, **kwargs: Any) -> bool:
        payload: dict[str, Any] = {"at": {"atMobiles": self.targets, "isAtAll": False}}
        if body_format == NotifyFormat.MARKDOWN:
            payload["msgtype"] = "markdown"
            payload["markdown"] = {"title": " ".join(title.split()) or self.app_desc,
                                   "text": truncate(body, limit_for("dingtalk", "markdown"))}
        else:
            payload["msgtype"] = "text"
            text = f"{title}\n{body}" if title else body
            payload["text"] = {"content": truncate(text, limit_for("dingtalk", "text"))}
        params = None
        if self.secret:
            timestamp, signature = self.get_signature()  # type: ignore[no-untyped-call]
            params = {"timestamp": timestamp, "sign": signature}
        return post_checked(self, self.notify_url.format(token=self.token), payload,
                            params=params)


class AlertJSON(NotifyJSON):  # type: ignore[no-untyped-call]
    """json:// and jsons:// whose payload also holds the alert itself, under ``"alert"``.

    A generic webhook's receiver is a program: it wants ``store``, ``severity``
    and ``incident_id`` as fields, not parsed out of a sentence. apprise's
    standard fields (``title``, ``message``, ``type``) stay, so receivers
    written for apprise keep working, and ``:key=value`` URL extras still apply.
    The channel sets ``document`` before each send (under its lock).
    """

    document: dict[str, Any] | None = None

    def send(self, body: str, title: str = "", notify_type: NotifyType = NotifyType.INFO,
             attach: Any = None, **kwargs: Any) -> bool:
        if self.document is None:
            return bool(super().send(  # type: ignore[no-untyped-call]
                body, title, notify_type, attach, **kwargs))
        extras = self.payload_extras
        self.payload_extras = {"alert": self.document, **extras}
        try:
            return bool(super().send(  # type: ignore[no-untyped-call]
                body, title, notify_type, attach, **kwargs))
        finally:
            self.payload_extras = extras


# apprise plugin class -> our replacement, built from the same parsed URL.
OVERRIDES: dict[type[Any], type[Any]] = {
    NotifyWeComBot: WeComBot,
    NotifyDingTalk: DingTalkBot,
    NotifyJSON: AlertJSON,
}
