"""What every channel is: a name, a definition, and a ``send`` that reports instead of raising.

The dispatcher retries, backs off and records every attempt, so a channel's
only job is to try once and say precisely what happened, per URL. A channel
that raised would leave the dispatcher guessing which URLs were reached; so
``send`` turns every problem into a failed ``DeliveryReport`` and the
exception-to-report conversion lives here, once, for all kinds.

Secrets: a definition's URLs are held as ``SecretUrl`` (masked by ``repr``,
``str`` and ``model_dump``), reports redact URLs and reasons when they are
built, so nothing a channel returns or logs can carry a token.
"""

from __future__ import annotations

import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import structlog
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    model_validator,
)

from watcher.alerts import Alert
from watcher.channels.rate import Rate, default_rate, parse_rate
from watcher.errors import ConfigError
from watcher.redact import redact_text, redact_url, register_secret

log = structlog.get_logger(__name__)

Format = Literal["auto", "text", "slack", "markdown", "html"]
Language = Literal["en", "zh-CN"]

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class UrlOutcome:
    """What one URL of a channel did with one alert.

    ``url`` and ``reason`` are redacted here, at construction, so that no
    caller can forget to. ``retryable`` is False when sending the same message
    to the same URL again would fail the same way (a refused key, a rejected
    payload), which lets the dispatcher stop hammering a service that said no.
    """

    url: str
    ok: bool
    reason: str = ""
    retryable: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", redact_url(self.url))
        object.__setattr__(self, "reason", redact_text(self.reason))

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "ok": self.ok, "reason": self.reason,
                "retryable": self.retryable}


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The outcome of one ``send``: per-URL outcomes, and what the dispatcher should do.

    ``ok`` only when every URL accepted the alert: apprise's own "partial
    success" is a failure here, because the people behind the failed URL were
    not told. ``reason`` is for failures that are not about one URL (the
    channel is not configured, it crashed).
    """

    ok: bool
    outcomes: list[UrlOutcome] = field(default_factory=list)
    retryable: bool = True
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", redact_text(self.reason))

    @classmethod
    def of(cls, outcomes: Sequence[UrlOutcome]) -> DeliveryReport:
        """Success when all URLs succeeded; retry when any failure may pass."""
        failed = [o for o in outcomes if not o.ok]
        return cls(ok=bool(outcomes) and not failed, outcomes=list(outcomes),
                   retryable=any(o.retryable for o in failed) if failed else True)

    def summary(self) -> str:
        """One line for logs and the incident timeline."""
        if self.ok:
            return f"delivered to {len(self.outcomes)} URL(s)" if self.outcomes else "delivered"
        failed = [o for o in self.outcomes if not o.ok]
        parts = [self.reason] if self.reason else []
        parts += [f"{o.url}: {o.reason or 'failed'}" for o in failed]
        if self.outcomes and len(failed) < len(self.outcomes):
            parts.append(f"{len(self.outcomes) - len(failed)} of {len(self.outcomes)} "
                         "URL(s) delivered")
        return "; ".join(parts) or "delivery failed"


class SecretUrl(SecretStr):
    """An apprise URL that shows itself only redacted (``wecombot://****``)."""

    def _display(self) -> str:
        return redact_url(self.get_secret_value())


def _language(value: Any) -> Any:
    """Accept ``zh``, ``zh_CN``, ``ZH-cn``: people type the language as they know it."""
    if isinstance(value, str) and value.strip().lower().replace("_", "-") in ("zh", "zh-cn"):
        return "zh-CN"
    if isinstance(value, str) and value.strip().lower().startswith("en"):
        return "en"
    return value


def _rate(value: Any) -> Any:
    """Checked now (a typo is a config error at start), kept as written."""
    if value is not None:
        parse_rate(str(value))
    return None if value is None else str(value)


class ChannelDef(BaseModel):
    """One named channel of the config file, with its ``${ENV}`` secrets filled in.

    Build it with ``from_config`` so that environment references are resolved
    and registered for redaction before anything can print them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: str = Field(default="apprise", pattern=r"^[a-z][a-z0-9_]*$",
                      description="apprise (default), console, memory")
    urls: tuple[SecretUrl, ...] = ()
    format: Format = "auto"
    language: Annotated[Language, BeforeValidator(_language)] = "en"
    rate: Annotated[str | None, BeforeValidator(_rate)] = Field(
        default=None, description="messages per window (20/min, 1/s, none); default: the "
                                  "service's (watcher/limits.py DEFAULT_RATES)")

    @model_validator(mode="after")
    def _apprise_needs_urls(self) -> ChannelDef:
        if self.kind == "apprise" and not self.urls:
            raise ValueError("an apprise channel needs at least one URL in 'urls'")
        return self

    @field_serializer("urls")
    def _masked(self, urls: tuple[SecretUrl, ...]) -> list[str]:
        return [redact_url(u.get_secret_value()) for u in urls]

    def revealed_urls(self) -> list[str]:
        """The real URLs, for the channel that sends to them and nobody else."""
        return [u.get_secret_value() for u in self.urls]

    @classmethod
    def from_config(cls, name: str, data: Mapping[str, Any] | None, *,
                    env: Mapping[str, str] | None = None,
                    file: str | None = None) -> ChannelDef:
        """Validate ``channels.<name>`` of the config; errors name that key.

        ``${VAR}`` in a URL is replaced by the environment's value, which is
        registered as a secret; ``$$`` is a literal ``$``. A missing or empty
        variable is an error now rather than a 401 at 3 a.m.
        """
        env = os.environ if env is None else env
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError("a channel is a mapping (urls, format, language, kind)",
                              file=file, key=f"channels.{name}")
        raw = dict(data)
        raw.setdefault("kind", "console" if name == "console" else "apprise")
        urls = raw.get("urls", [])
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list | tuple):
            raise ConfigError("'urls' is a list of apprise URLs", file=file,
                              key=f"channels.{name}.urls")
        raw["urls"] = [substitute_env(u, env, file=file, key=f"channels.{name}.urls.{i}")
                       if isinstance(u, str) else u for i, u in enumerate(urls)]
        try:
            return cls.model_validate({**raw, "name": name})
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise ConfigError(redact_text(error["msg"]), file=file,
                              key=f"channels.{name}" + (f".{where}" if where else "")) from None


def substitute_env(url: str, env: Mapping[str, str], *, file: str | None, key: str) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        variable = match.group(1)
        found = env.get(variable)
        if not found:
            state = "is empty" if variable in env else "is not set"
            raise ConfigError(f"environment variable {variable} {state}", file=file, key=key)
        register_secret(found)
        return found

    return _ENV_REF.sub(value, url)


class Channel(ABC):
    """A named destination; ``send`` is safe to call from one worker thread per channel.

    Sends on one channel are serialized by a lock: apprise keeps throttle state
    and our plugins keep the last reply on their instances, and two alerts
    racing through them would garble both. Different channels never wait for
    each other.
    """

    def __init__(self, defn: ChannelDef) -> None:
        self.defn = defn
        self.name = defn.name
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> DeliveryReport:
        """Deliver ``alert`` once; never raises for a delivery problem (nor a bug)."""
        with self._lock:
            try:
                return self.deliver(alert)
            except Exception as exc:  # a bug in one channel must not lose the alert
                log.exception("channel_crashed", channel=self.name, kind=self.defn.kind)
                return DeliveryReport(ok=False, retryable=True,
                                      reason=f"channel error: {type(exc).__name__}: {exc}")

    @property
    def rate(self) -> Rate | None:
        """The send rate all replicas share: the channel's ``rate:``, or its services'."""
        if self.defn.rate is not None:
            return parse_rate(self.defn.rate)
        return default_rate(self.services())

    def services(self) -> list[str]:
        """The services (apprise schemes) this channel sends to, for default rates."""
        return []

    @abstractmethod
    def deliver(self, alert: Alert) -> DeliveryReport:
        """Try once; may raise (``send`` turns it into a report)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.defn!r}>"
