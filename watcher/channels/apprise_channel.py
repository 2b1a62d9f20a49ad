"""The apprise channel: one alert, rendered per service, sent to each URL of the channel.

How it uses apprise, and why:

- One ``Apprise`` object (one plugin instance) per URL, built once and
  reused. Each URL gets the body in its own dialect (Slack mrkdwn, WeCom
  markdown, email HTML…), which a single multi-URL ``notify`` cannot do, and
  each URL gets its own outcome and reason from apprise's per-service result.
- apprise does not retry and calls "partial success" what is a failure for
  the people behind the failed URL. The channel reports per URL, and
  remembers which URLs already accepted an alert, so that the dispatcher's
  retry of the same alert goes only to the URLs that failed.

What blocks, in the calling (worker) thread, per URL and sequentially:

- network I/O, bounded by apprise's timeouts (HTTP: 4 s connect + 4 s read;
  SMTP: 15 s connect);
- apprise's throttle: a plugin instance sleeps until ``request_rate_per_sec``
  seconds have passed since its previous request (5.5 s for WeCom, DingTalk,
  Feishu and email, 1.2 s for Slack, 0 for json://). The first send on a URL
  never sleeps, and instances are per URL, so one alert to a channel of N
  URLs sleeps for none of them; only the next alert to the same URL within
  that interval waits, which is what those services' rate limits ask for.
  ``throttle_seconds`` overrides it (tests use 0).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import apprise
import structlog
from apprise.common import NotifyFormat, NotifyType
from apprise.plugins import N_MGR, url_to_dict
from apprise.plugins.email import NotifyEmail
from apprise.plugins.feishu import NotifyFeishu
from apprise.plugins.lark import NotifyLark
from apprise.plugins.slack import NotifySlack

from watcher.alerts import Alert, AlertKind
from watcher.channels.base import Channel, ChannelDef, DeliveryReport, Format, UrlOutcome
from watcher.channels.limits import NONE, Limit, fits, limit_for, truncate
from watcher.channels.plugins import OVERRIDES, AlertJSON, DingTalkBot, WeComBot
from watcher.channels.render import Renderer
from watcher.errors import ConfigError
from watcher.redact import MASK, redact_text, redact_url, register_secret

log = structlog.get_logger(__name__)

NOTIFY_TYPES = {"critical": NotifyType.FAILURE, "high": NotifyType.FAILURE,
                "medium": NotifyType.WARNING, "low": NotifyType.INFO}
_BODY_FORMATS: dict[str, NotifyFormat | None] = {
    "text": NotifyFormat.TEXT, "markdown": NotifyFormat.MARKDOWN, "html": NotifyFormat.HTML,
    "slack": None,  # Slack's own mrkdwn: sent as is (apprise would re-convert CommonMark)
}
APP = "kpi-watch"  # apprise shows it as sender name / footer


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one service wants an alert.

    ``heading``: the body starts with the title (services without a title of
    their own, or whose title is only a preview). ``title``: pass the subject
    as apprise's title. ``document``: the payload carries the alert as JSON.
    """

    template: str
    body_format: NotifyFormat | None
    heading: bool
    title: bool
    limit: Limit = NONE
    title_limit: Limit = NONE
    document: bool = False


def dialect_for(plugin: Any, service: str, fmt: Format) -> Dialect:
    """The channel's ``format``, or for ``auto`` the richest one the service renders."""
    heading, title, document = False, True, False
    title_limit = NONE
    if isinstance(plugin, NotifySlack):
        auto = "slack"
        title_limit = Limit(max_chars=150)  # a Slack header block holds 150 characters
    elif isinstance(plugin, WeComBot):
        auto, heading, title = "markdown", True, False  # WeCom has no title field
    elif isinstance(plugin, DingTalkBot):
        auto, heading = "markdown", True  # its title is only the notification preview
    elif isinstance(plugin, NotifyFeishu | NotifyLark):
        auto = "markdown"  # a card: the subject is its header
    elif isinstance(plugin, NotifyEmail):
        auto, heading = "html", True
    elif isinstance(plugin, AlertJSON):
        auto, document = "text", True
    else:
        declared = plugin.notify_format
        formats = set(declared) if isinstance(declared, tuple | list) else {declared}
        auto = ("markdown" if NotifyFormat.MARKDOWN in formats
                else "html" if NotifyFormat.HTML in formats else "text")
        if plugin.title_maxlen <= 0:
            heading, title = True, False
    template = auto if fmt == "auto" else fmt
    if isinstance(plugin, DingTalkBot) and template != "markdown":
        title = False  # a text message has no preview title: the heading says it all
    variant = ("blocks" if getattr(plugin, "use_blocks", False) else "*") \
        if service == "slack" else template
    return Dialect(template=template, body_format=_BODY_FORMATS[template], heading=heading,
                   title=title, limit=limit_for(service, variant), title_limit=title_limit,
                   document=document)


class Target:
    """One URL of a channel: its plugin (and throttle state), its dialect, its outcome."""

    def __init__(self, url: str, fmt: Format, *, asset: apprise.AppriseAsset,
                 throttle_seconds: float | None = None, file: str | None = None,
                 key: str | None = None) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.service, self.plugin = _instantiate(url, asset, file=file, key=key)
        if throttle_seconds is not None:
            self.plugin.request_rate_per_sec = throttle_seconds
        self.apprise = apprise.Apprise(asset=asset)
        self.apprise.add(self.plugin)
        self.dialect = dialect_for(self.plugin, self.service, fmt)

    def send(self, alert: Alert, renderer: Renderer, language: str) -> UrlOutcome:
        d = self.dialect
        rendered = renderer.render(alert, d.template, language, heading=d.heading,
                                   service=self.service)
        if alert.digest is not None or alert.weekly is not None:
            # name fewer alerts (incidents, stores) rather than cut the message
            named = len(alert.digest.worst) if alert.digest is not None else max(
                (len(found) for s in alert.weekly.sections  # type: ignore[union-attr]
                 for found in (s.opened_list, s.open_list, s.resolved_list)),
                default=0)
            while named and not fits(rendered.body, d.limit):
                named -= 1
                rendered = renderer.render(alert, d.template, language, heading=d.heading,
                                           service=self.service, digest_items=named)
        body = truncate(rendered.body, d.limit, renderer.words(language).get("truncated", "…"))
        title = truncate(rendered.subject, d.title_limit) if d.title else ""
        notify_type = (NotifyType.SUCCESS if alert.kind is AlertKind.RESOLVED
                       else NOTIFY_TYPES.get(alert.severity, NotifyType.INFO))
        if hasattr(self.plugin, "last_refusal"):
            self.plugin.last_refusal = None  # never report the previous send's refusal
        if d.document:
            self.plugin.document = alert.as_json()
        try:
            result = self.apprise.notify(body=body, title=title, notify_type=notify_type,
                                         body_format=d.body_format)
        finally:
            if d.document:
                self.plugin.document = None
        try:
            if result:
                return UrlOutcome(self.url, True)
            refusal = getattr(self.plugin, "last_refusal", None)
            if refusal is not None:
                return UrlOutcome(self.url, False, refusal.reason(self.plugin.service_name),
                                  refusal.retryable)
            return UrlOutcome(self.url, False, _reason(result))
        finally:
            result.close()


def _reason(result: Any) -> str:
    """The last warning apprise logged for this service: its own words for what failed."""
    messages = [entry.message for entry in result.logs()
                if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    return messages[-1] if messages else f"apprise: {result.status.name.lower()}"


@contextmanager
def _apprise_messages() -> Iterator[list[str]]:
    """apprise's log lines while a URL is parsed (they say why it is invalid)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _mask_parts(message: str, url: str) -> str:
    """``message`` without any part of ``url``: apprise quotes the (wrong) key it refused."""
    rest = url.split("://", 1)[-1]
    for part in sorted(set(re.split(r"[/:@?&=#]+", rest)) | {unquote(rest)}, key=len,
                       reverse=True):
        for variant in {part, unquote(part)}:
            if len(variant) >= 4:
                message = message.replace(variant, MASK)
    return redact_text(message)


def _instantiate(url: str, asset: apprise.AppriseAsset, *, file: str | None,
                 key: str | None) -> tuple[str, Any]:
    """``(schema, plugin)`` for ``url``, our override class where we have one.

    apprise's own parser is used (native webhook URLs such as
    ``https://qyapi.weixin.qq.com/...?key=`` included), then the plugin class
    is swapped before construction. The secrets the plugin declares private
    are registered for redaction, also when written in the URL literally.
    """
    with _apprise_messages() as messages:
        results = url_to_dict(url, secure_logging=True)  # type: ignore[no-untyped-call]
        if not results:
            raise ConfigError(f"not an apprise URL apprise can use: {redact_url(url)}"
                              + (f" ({_mask_parts(messages[-1], url)})" if messages else ""),
                              file=file, key=key)
        schema = str(results["schema"])
        base = N_MGR[schema]
        cls = OVERRIDES.get(base, base)
        try:
            plugin = cls(**{**results, "asset": asset, "tag": set()})
        except Exception as exc:
            why = _mask_parts(messages[-1], url) if messages else type(exc).__name__
            raise ConfigError(f"invalid {schema}:// URL {redact_url(url)}: {why}",
                              file=file, key=key) from None
    for name, spec in plugin.template_tokens.items():
        if spec.get("private"):
            value = getattr(plugin, spec.get("map_to", name), None)
            for secret in value if isinstance(value, list | tuple) else [value]:
                if isinstance(secret, str):
                    register_secret(secret)
    return schema, plugin


class AppriseChannel(Channel):
    """Sends to every URL of the definition; ``ok`` only when all of them accepted."""

    def __init__(self, defn: ChannelDef, *, renderer: Renderer | None = None,
                 throttle_seconds: float | None = None, file: str | None = None,
                 remember: int = 1024) -> None:
        super().__init__(defn)
        self.renderer = renderer or Renderer()
        # async_mode off: each Target holds one URL, and apprise's parallel mode would
        # start a thread pool for every single send (it dominated a profile at 200/s).
        asset = apprise.AppriseAsset(language="en", app_id=APP, app_desc=APP, async_mode=False)
        self.targets = [Target(url, defn.format, asset=asset, throttle_seconds=throttle_seconds,
                               file=file, key=f"channels.{defn.name}.urls.{index}")
                        for index, url in enumerate(defn.revealed_urls())]
        self._delivered: OrderedDict[str, set[int]] = OrderedDict()
        self._remember = remember

    def services(self) -> list[str]:
        return [target.service for target in self.targets]

    def deliver(self, alert: Alert) -> DeliveryReport:
        identity = hashlib.sha256(alert.model_dump_json().encode()).hexdigest()
        done = self._delivered.get(identity, set())
        outcomes: list[UrlOutcome] = []
        for index, target in enumerate(self.targets):
            if index in done:
                outcomes.append(UrlOutcome(target.url, True, "delivered on an earlier attempt"))
                continue
            try:
                outcome = target.send(alert, self.renderer, self.defn.language)
            except Exception as exc:  # one URL's crash must not cost the others their alert
                log.exception("url_crashed", channel=self.name, url=target.shown)
                outcome = UrlOutcome(target.url, False, f"{type(exc).__name__}: {exc}")
            if outcome.ok:
                done.add(index)
            else:
                log.warning("url_failed", channel=self.name, url=outcome.url,
                            reason=outcome.reason, retryable=outcome.retryable)
            outcomes.append(outcome)
        self._remember_delivered(identity, done)
        return DeliveryReport.of(outcomes)

    def _remember_delivered(self, identity: str, done: set[int]) -> None:
        if len(done) == len(self.targets):
            self._delivered.pop(identity, None)  # all delivered: a resend is a new request
            return
        if done:
            self._delivered[identity] = done
            self._delivered.move_to_end(identity)
            while len(self._delivered) > self._remember:
                self._delivered.popitem(last=False)
