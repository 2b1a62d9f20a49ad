"""Settings: read once at start from the config file and the environment, then frozen.

Nothing deeper in the code reads the environment or a file on its own; it is
handed the part of ``Settings`` it needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from watcher import defaults, limits, yamlfile
from watcher.assessment.weights import ScorecardSettings
from watcher.errors import ConfigError
from watcher.limits import CLAIM_LEASE_SECONDS

MATCH_KEYS = ("audience", "severity", "rule", "platform", "store", "operator", "team",
              "manager")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """``90`` (seconds), ``"45s"``, ``"30m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text and text[-1] in _UNITS:
            try:
                return float(text[:-1]) * _UNITS[text[-1]]
            except ValueError:
                pass
        try:
            return float(text)
        except ValueError:
            pass
    raise ValueError(f"is not a duration like 30m, 2h or 1d: {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class EscalationStep(BaseModel):
    """After ``after`` without acknowledgement, also tell ``channels``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    after: Duration
    channels: tuple[str, ...]


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(value: Any) -> Any:
    """``monday``, ``mon``, ``Mon`` or 1-7 (ISO: 1 is Monday) -> 1-7; anything else is
    refused by the field (``tue`` is Tuesday, ``t`` is ambiguous: refused)."""
    if isinstance(value, bool):
        raise ValueError(f"is not a day of the week: {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        found = [i for i, day in enumerate(WEEKDAYS, 1) if len(text) >= 3 and
                 day.startswith(text)]
        if len(found) == 1:
            return found[0]
        raise ValueError(f"is not a day of the week (monday..sunday, mon..sun or 1-7): "
                         f"{value!r}")
    return value


class DigestSchedule(BaseModel):
    """``digest:`` of a route: a weekly digest of its incidents (``digest: weekly``, or
    ``{every: weekly, day: friday, hour: 17}``), sent on ``day`` at ``hour`` (UTC) for
    the ISO week just closed (watcher/weekly.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    every: Literal["weekly"] = "weekly"
    day: Annotated[int, BeforeValidator(_weekday), Field(ge=1, le=7)] = 1
    hour: int = Field(default=9, ge=0, le=23)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"every": value}
        if not isinstance(value, dict):  # true, a number, a list
            raise ValueError(f"is \"weekly\" or {{every: weekly, day: monday, hour: 9}}, "
                             f"not {json.dumps(value, default=str, ensure_ascii=False)}")
        return value

    @property
    def day_name(self) -> str:
        return WEEKDAYS[self.day - 1]


class Route(BaseModel):
    """Alertmanager-style route: the first match wins unless ``continue`` is set.

    A route may carry an escalation policy (PagerDuty-style steps) and a
    reminder interval, both stopped by an acknowledgement, and a weekly
    ``digest``; ``notify`` says whether its channels get one message per incident
    (``each``), only the digest (``digest``), or both.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    match: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    channels: tuple[str, ...]
    continue_: bool = Field(default=False, alias="continue")
    escalate: tuple[EscalationStep, ...] = ()
    repeat_interval: Duration | None = None
    group_by: tuple[str, ...] = ()
    group_wait: Duration | None = None
    digest: DigestSchedule | None = None
    notify: Literal["each", "digest", "both"] | None = Field(
        default=None, description="each: one message per incident (the default without a "
                                  "digest); digest: only the weekly digest; both (the "
                                  "default with a digest)")

    @model_validator(mode="after")
    def _digest_only(self) -> Route:
        if self.notify in ("digest", "both") and self.digest is None:
            raise ValueError(f"notify: {self.notify} needs a digest (digest: weekly)")
        if self.notify == "digest" and (self.escalate or self.repeat_interval
                                        or self.group_wait):
            raise ValueError("a digest-only route (notify: digest) sends no message per "
                             "incident: it cannot escalate, remind or group (drop escalate, "
                             "repeat_interval, group_wait, or use notify: both)")
        return self

    @property
    def each(self) -> bool:
        """Whether the route's channels get one message per incident."""
        return self.notify != "digest"

    @field_validator("match", mode="before")
    @classmethod
    def _match(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): tuple(str(i) for i in v) if isinstance(v, list) else (str(v),)
                    for k, v in value.items()}
        return value

    def matches(self, labels: Mapping[str, str | None]) -> bool:
        return all(labels.get(key) in values for key, values in self.match.items())


class Inhibition(BaseModel):
    """While a live incident matches ``source``, hold notifications of incidents that
    match ``target`` and share the ``equal`` labels (e.g. a suspended account makes
    lower-severity alerts for the same store noise)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: dict[str, tuple[str, ...]]
    target: dict[str, tuple[str, ...]]
    equal: tuple[str, ...] = ("store",)

    @field_validator("source", "target", mode="before")
    @classmethod
    def _values(cls, value: Any) -> Any:
        return Route._match(value)

    def inhibits(self, source: Mapping[str, str | None], target: Mapping[str, str | None]) -> bool:
        return (all(source.get(k) in v for k, v in self.source.items())
                and all(target.get(k) in v for k, v in self.target.items())
                and all(source.get(k) is not None and source.get(k) == target.get(k)
                        for k in self.equal))


class NatsSettings(BaseModel):
    """The NATS JetStream source (``nats:`` in the config file; absent: off).

    Replicas that share ``durable`` share one pull consumer, so each message goes
    to one of them. ``max_deliver`` is counted by kpi-watch, not the server: a
    message is only dropped once its failure is written to the rejected log.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = "nats://127.0.0.1:4222"
    stream: str = Field(default="KPI_SNAPSHOTS", pattern=r"^[A-Za-z0-9_-]{1,100}$")
    subject: str = Field(default="kpi.snapshots.>",
                         pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.>$",
                         description="the stream's subjects: <prefix>.> where messages are "
                                     "published on <prefix>.<platform>.<store>")
    durable: str = Field(default="kpi-watch", pattern=r"^[A-Za-z0-9_-]{1,100}$")
    max_deliver: int = Field(default=5, ge=1, le=1000)
    batch: int = Field(
        default=500, ge=1, le=10_000,
        description="messages per fetch, one transaction: a fetch returns what is there "
                    "without waiting to fill it (bench.fleet: 500 drains a backlog about "
                    "30 % faster than 100)")
    ack_wait: Duration = 30.0
    retry_delay: Duration = 5.0


class PollerSettings(BaseModel):
    """``pollers.<name>``: fetch one store from a platform API on a schedule (off unless listed).

    ``credentials`` values are ``${ENV}`` references; they are filled in, and
    registered for masking, when the poller is built (watcher/sources/poll.py),
    so Settings never holds a secret.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["shopee", "amazon-spapi"]
    store: str = Field(min_length=1, max_length=200)
    operator: str | None = None
    every: Duration = 3600.0
    enabled: bool = True
    base_url: str | None = Field(default=None, pattern=r"^https?://",
                                 description="API host (default: the production host)")
    token_url: str | None = Field(default=None, pattern=r"^https?://",
                                  description="Amazon: the LWA token endpoint")
    marketplaces: tuple[str, ...] = Field(default=(), description="Amazon marketplace ids")
    report_timeout: Duration = Field(default=600.0, description="Amazon: report wait limit")
    credentials: dict[str, str] = Field(default_factory=dict)


class RetentionSettings(BaseModel):
    """``retention``: how long finished records are kept. Work still to do (a
    notification not yet delivered) never expires, and incidents, their timelines
    and the snapshots' values are history: kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sent_notifications: Duration | None = Field(
        default=30 * 86400, description="delivered outbox rows (each delivery stays on its "
                                        "incident's timeline as a 'notified' event)")
    rejected_inputs: Duration | None = Field(default=90 * 86400,
                                             description="the rejected log")
    raw_payloads: Duration | None = Field(
        default=None, description="the text each snapshot arrived as (its values stay)")
    every: Duration = Field(default=3600.0, description="how often the daemon prunes")


class PipSettings(BaseModel):
    """``pip:``: the defaults of a performance-improvement plan (docs/people.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: int = Field(default=60, ge=1, le=366, description="a plan's length")
    checkpoint_days: int = Field(default=30, ge=1, le=366,
                                 description="a review every this many days")
    remind_days: int = Field(default=3, ge=0, le=60,
                             description="the manager is reminded this many days before "
                                         "each checkpoint and the end")


class ReportSettings(BaseModel):
    """``report:``: when each manager's monthly team report goes out (day of the month
    after the one it covers, hour in UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    day: int = Field(default=3, ge=1, le=28)
    hour: int = Field(default=9, ge=0, le=23)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = "sqlite:///watcher.db"  # load_settings places it (default_database_url)
    rules: Path = Field(default_factory=defaults.rules,
                        description="rule file or folder (default: the built-in pack)")
    drop_folder: Path = Path("inbox")
    drop_poll_seconds: float = Field(default=1.0, gt=0)
    rules_poll_seconds: float = Field(default=2.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    allowed_hosts: tuple[str, ...] = Field(
        default=(), description="more names the daemon answers to besides loopback, "
                                "public_url's host and the bound address (421 otherwise); "
                                "'*.example.com' matches its subdomains")
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    inhibit: tuple[Inhibition, ...] = ()
    reopen_hold: Duration | None = Field(
        default=None, description="an incident resolved less than this ago re-opens "
                                  "(same id, no new notification) instead of a new one; "
                                  "an automatic resolution is notified only after it")
    default_channels: tuple[str, ...] = ("console",)
    templates: Path | None = Field(
        default=None, description="message templates folder (default: the built-in ones)")
    targets: Path | None = Field(
        default=None, description="targets file (docs/scorecards.md); reloaded on change")
    scorecard: ScorecardSettings = Field(default_factory=ScorecardSettings)
    roster: Path | None = Field(
        default=None, description="roster file (YAML or CSV): each operator's tier, team, "
                                  "manager, name; reloaded on change")
    pip: PipSettings = Field(default_factory=PipSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    max_body_bytes: int = Field(default=limits.MAX_BODY_BYTES, gt=0,
                                description="an HTTP body (413 beyond it)")
    max_file_bytes: int = Field(default=500_000_000, gt=0,
                                description="a file given to watcher ingest or dropped: ERP "
                                            "exports and backfills are bigger than a post")
    batch_size: int = Field(default=500, ge=1, le=10_000)
    dispatch_poll_seconds: float = Field(default=0.5, gt=0)
    timers_poll_seconds: float = Field(default=30.0, gt=0)
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)
    claim_lease_seconds: float = Field(
        default=CLAIM_LEASE_SECONDS, gt=0,
        description="a replica that dies holding a claimed notification loses it after "
                    "this long (a live one renews its claims every third of it)")
    nats: NatsSettings | None = None
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    mappings: Path | None = Field(
        default_factory=defaults.mappings,
        description="column-mapping files for ERP exports (default: the built-in ones)")
    platforms: tuple[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")], ...] = Field(
        default=(), description="platform names of your own (walmart), beside those the "
                                "sources and mappings produce: rules and filters may name "
                                "them (watcher/platforms.py)")
    pollers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")],
                  PollerSettings] = Field(default_factory=dict)
    config_file: Path | None = None

    def channel_names(self) -> set[str]:
        return {"console", *self.channels}


def load_settings(config_file: Path | str | None = None,
                  env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from ``config_file`` (or ``$WATCHER_CONFIG``), then the environment."""
    env = os.environ if env is None else env
    path = Path(config_file) if config_file else (
        Path(env["WATCHER_CONFIG"]) if env.get("WATCHER_CONFIG") else None)
    data: dict[str, Any] = {}
    lines: yamlfile.Lines = {}
    if path is not None:
        loaded, lines = yamlfile.load(path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("a config file is a YAML mapping", file=str(path), line=1)
        data = dict(loaded)
        base = path.parent
        for key in ("rules", "drop_folder", "templates", "targets", "mappings", "roster"):
            if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
                data[key] = str(base / data[key])
        data["config_file"] = str(path)
    if env.get("WATCHER_DATABASE_URL"):
        data["database_url"] = env["WATCHER_DATABASE_URL"]
    elif "database_url" not in data and "database_url" not in overrides:
        data["database_url"] = default_database_url(path)
    if env.get("WATCHER_NATS_URL") and isinstance(data.get("nats"), dict):
        data["nats"] = {**data["nats"], "url": env["WATCHER_NATS_URL"]}  # may hold a secret
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise yamlfile.config_error(exc, str(path or "settings"), lines) from None
    _check_routes(settings, str(path or "settings"), lines)
    return settings


def default_database_url(config_file: Path | None) -> str:
    """The SQLite file used when neither the config nor WATCHER_DATABASE_URL names one.

    One place that does not depend on the current folder, so that the CLI run from
    anywhere and the daemon agree: next to the config file when there is one,
    otherwise in the platform's user data folder (``~/.local/share/kpi-watch`` on
    Linux, honouring ``XDG_DATA_HOME``).
    """
    folder = (config_file.resolve().parent if config_file is not None
              else platformdirs.user_data_path("kpi-watch", appauthor=False))
    return f"sqlite:///{folder / 'watcher.db'}"


def _check_routes(settings: Settings, name: str, lines: yamlfile.Lines) -> None:
    known = settings.channel_names()
    for index, route in enumerate(settings.routes):
        for channel in (*route.channels, *(c for step in route.escalate for c in step.channels)):
            if channel not in known:
                raise ConfigError(
                    f"route sends to unknown channel '{channel}' (known: "
                    f"{', '.join(sorted(known))})", file=name, key=f"routes.{index}.channels",
                    line=yamlfile.line_of(lines, ("routes", index, "channels")))
        for key in route.match:
            if key not in MATCH_KEYS and not key.startswith("label."):
                raise ConfigError(
                    f"cannot match on '{key}' (use {', '.join(MATCH_KEYS)} or label.<name>)",
                    file=name, key=f"routes.{index}.match.{key}",
                    line=yamlfile.line_of(lines, ("routes", index, "match", key)))
    for channel in settings.default_channels:
        if channel not in known:
            raise ConfigError(f"unknown channel '{channel}'", file=name, key="default_channels")


def policy(settings: Settings, labels: Mapping[str, str | None]) -> Route | None:
    """The first matching route that escalates or reminds, if any; none past a
    digest-only route that takes the alert (its digest carries it, nothing else)."""
    for candidate in settings.routes:
        if candidate.matches(labels) and (candidate.escalate or candidate.repeat_interval):
            return candidate
        if candidate.matches(labels) and not candidate.each and not candidate.continue_:
            return None
    return None


def group_for(settings: Settings, labels: Mapping[str, str | None],
              channel: str) -> tuple[str, float] | None:
    """(group key, wait) when the route sending to ``channel`` groups its alerts."""
    for index, candidate in enumerate(settings.routes):
        if not candidate.matches(labels):
            continue
        if channel in candidate.channels and candidate.group_wait:
            values = "|".join(f"{k}={labels.get(k) or ''}" for k in candidate.group_by)
            return f"{channel}|route{index}|{values}", candidate.group_wait
        if not candidate.continue_:
            return None
    return None


def route(settings: Settings, labels: Mapping[str, str | None], *,
          each: bool = True) -> list[str]:
    """Channels for an alert with ``labels``; the default channels when no route matches.

    ``each``: the alert is a message about one incident (opened, worse, reminder,
    released, a PIP reminder): a digest-only route (``notify: digest``) still takes
    it (first match wins) but sends it nowhere, its weekly digest carries it. A
    document of its own (the monthly report) passes ``each=False``.
    """
    chosen: list[str] = []
    matched = False
    for candidate in settings.routes:
        if candidate.matches(labels):
            matched = True
            if candidate.each or not each:
                chosen.extend(c for c in candidate.channels if c not in chosen)
            if not candidate.continue_:
                break
    return chosen if matched else list(settings.default_channels)
