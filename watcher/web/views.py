"""What the page shows, as plain data: filters, timeline lines, evidence rows.

Pure functions over the stored incident and its events, so the wording of a
timeline can be tested without a browser or a database. Everything that came
from outside (notes, delivery errors, URLs) passes through the redaction
helpers: a channel's secret must not reach a page any more than a log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from watcher import echo, indicators
from watcher.errors import InputError
from watcher.evaluation import format_value
from watcher.incidents import INCIDENT_SORTS, Incident, IncidentSort
from watcher.numbers import to_ascii
from watcher.platforms import brand
from watcher.redact import redact_text, redact_url
from watcher.rules.model import Rule, Severity
from watcher.web.i18n import MESSAGES, translator, when

Translate = Callable[..., str]


DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
SHOWN_MAX = 40  # characters of a refused value the page repeats
_CHOICES: dict[str, tuple[str, ...]] = {
    "status": ("open", "acknowledged", "resolved"), "severity": tuple(s.value for s in Severity),
    "sort": INCIDENT_SORTS}


def shown(text: str) -> str:
    """A value typed into a URL, fit to be repeated on the page: printable, cut short."""
    return echo.shown(text, SHOWN_MAX)


def parse_day(text: str) -> date:
    """A day as the date fields take it, ``YYYY-MM-DD`` (full-width digits read as ASCII,
    as in a period): nothing else is guessed at (not ``11/05/2026``, not a timestamp)."""
    ascii_text = to_ascii(text).strip()
    if not DAY.match(ascii_text):
        raise ValueError(f"'{shown(text)}' is not a day written YYYY-MM-DD")
    return date.fromisoformat(ascii_text)  # ValueError for 2026-02-30


def field_label(lang: str, field: str | None, *sections: str) -> str:
    """The label a form shows for ``field`` (its key in the first of ``sections`` that has
    one), so that an error names the field as the visitor sees it, in their language."""
    for section in (*sections, "filter"):
        key = f"{section}.{field}"
        if key in MESSAGES[lang]:
            return translator(lang)(key)
    return str(field)


class QueryProblem(InputError):
    """A filter the page refuses: the field, and what to tell the visitor, in their language
    (``key`` and ``values`` of the catalogue's ``error.*``)."""

    def __init__(self, field: str, key: str, **values: Any) -> None:
        self.key, self.values = key, values
        super().__init__(translator("en")(key, **values), field=field)

    def text(self, lang: str) -> str:
        t = translator(lang)
        return t("error.field", field=field_label(lang, self.field),
                 message=t(self.key, **self.values))


class ListQuery(BaseModel):
    """The incident list's filters and page, as the filter form sends them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["open", "acknowledged", "resolved"] | None = None
    severity: Severity | None = None
    store: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00]*$")
    operator: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00]*$")
    rule: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00]*$")
    since: date | None = None
    until: date | None = None
    sort: IncidentSort = "newest"
    page: int = Field(default=1, ge=1, le=100_000)
    per: int = Field(default=25, ge=1, le=200)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """An empty form field means "any", not an empty store name."""
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items()
                    if v not in ("", None) and not (k in ("since", "until")
                                                    and isinstance(v, str) and not v.strip())}
        return data

    @field_validator("since", "until", mode="before")
    @classmethod
    def _day(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse_day(value)
        except ValueError:
            raise PydanticCustomError("day", "is not a day written YYYY-MM-DD") from None

    @model_validator(mode="after")
    def _in_order(self) -> ListQuery:
        if self.since and self.until and self.since > self.until:
            raise PydanticCustomError("day_order", "the first day is after the last")
        return self

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> ListQuery:
        """The filters of a request; a bad one raises ``QueryProblem`` naming its field."""
        try:
            return cls.model_validate(dict(params))
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"])
            kind, ctx = first["type"], first.get("ctx") or {}
            if kind == "day_order":
                raise QueryProblem("until", "error.date_order",
                                   since=shown(params.get("since", "")),
                                   until=shown(params.get("until", ""))) from None
            value = shown(str(params.get(name, "")))
            if kind == "day":
                raise QueryProblem(name, "error.date", value=value) from None
            if name in _CHOICES:
                raise QueryProblem(name, "error.choice", choices=" / ".join(_CHOICES[name]),
                                   value=value) from None
            if kind == "string_too_long":
                raise QueryProblem(name, "error.too_long", max=ctx.get("max_length")) from None
            if kind == "string_pattern_mismatch":
                raise QueryProblem(name, "error.nul") from None
            raise QueryProblem(name or "query", "error.invalid", value=value) from None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        """``since`` from its first moment, ``until`` to its last (both days included)."""
        start = datetime.combine(self.since, time(), UTC) if self.since else None
        end = (datetime.combine(self.until, time(), UTC) + timedelta(days=1)
               if self.until and self.until < date.max else None)
        return start, end

    def url(self, **changes: Any) -> str:
        """This list's URL with ``changes`` (e.g. ``page=2``); defaults are left out."""
        values = {**self.model_dump(mode="json"), **changes}
        defaults = ListQuery().model_dump(mode="json")
        kept = {k: v for k, v in values.items() if v is not None and v != defaults.get(k)}
        return "/?" + urlencode(kept) if kept else "/"


@dataclass(frozen=True, slots=True)
class TimelineLine:
    at: datetime
    kind: str
    label: str
    actor: str
    note: str | None
    details: tuple[str, ...] = ()
    incident_link: int | None = None


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    period: str
    store: str
    indicator: str
    value: str
    target: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    incident: Incident
    months: tuple[str, ...]
    indicators: tuple[str, ...]
    evidence: tuple[EvidenceRow, ...]


def title_of(incident: Incident, lang: str) -> str:
    return incident.title.get(lang) or incident.title.get("en") or incident.rule


def rule_scope(rule: Rule, lang: str) -> str | None:
    """A rule limited to some platforms says so beside its description: "(Amazon only)"."""
    if not rule.platforms:
        return None
    t = translator(lang)
    names = t("list.names").join(brand(p) for p in rule.platforms)
    return t("incident.platforms_only", platforms=names)


def indicator_name(metric: str, lang: str) -> str:
    indicator = indicators.get(metric)
    if indicator is None:
        return metric
    return indicator.name_zh if lang == "zh-CN" else indicator.name_en


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def evidence_rows(incident: Incident, lang: str) -> list[EvidenceRow]:
    """A PIP's evidence: each missed month's indicator, its value and its target."""
    rows = []
    for item in incident.evidence:
        metric = str(item.get("metric", ""))
        comparator = item.get("comparator")
        target = format_value(metric, _number(item.get("target")))
        rows.append(EvidenceRow(
            period=str(item.get("period", "")), store=str(item.get("store", "")),
            indicator=indicator_name(metric, lang),
            value=format_value(metric, _number(item.get("value"))),
            target=f"{comparator} {target}" if comparator else target))
    return sorted(rows, key=lambda r: (r.period, r.store, r.indicator))


def recommendation(incident: Incident, lang: str) -> Recommendation:
    months = tuple(sorted({str(e.get("period")) for e in incident.evidence if e.get("period")}))
    names = tuple(sorted({indicator_name(str(e["metric"]), lang)
                          for e in incident.evidence if e.get("metric")}))
    return Recommendation(incident, months, names, tuple(evidence_rows(incident, lang)))


def timeline(events: list[dict[str, Any]], lang: str) -> list[TimelineLine]:
    """The incident's events in order, each with what a person needs to know of it."""
    t = translator(lang)
    return [TimelineLine(at=e["at"], kind=str(e["kind"]), label=t(f"event.{e['kind']}"),
                         actor=str(e["actor"]),
                         note=redact_text(e["note"]) if e.get("note") else None,
                         details=tuple(_details(str(e["kind"]), e.get("data") or {}, lang, t)),
                         incident_link=_int(e.get("data", {}).get("inhibitor"))
                         if e["kind"] == "inhibited" else None)
            for e in events]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _channels(value: Any) -> str:
    return ", ".join(str(c) for c in value) if isinstance(value, list) else str(value or "")


def _details(kind: str, data: Mapping[str, Any], lang: str, t: Translate) -> list[str]:
    lines: list[str] = []
    if kind in ("opened", "firing", "reopened"):
        metric = data.get("metric")
        if metric:
            lines.append(t("detail.value", metric=indicator_name(str(metric), lang),
                           value=format_value(str(metric), _number(data.get("value"))),
                           threshold=format_value(str(metric), _number(data.get("threshold"))),
                           period=data.get("period", "")))
        elif data.get("period"):
            lines.append(t("detail.period", period=data["period"]))
    elif kind in ("notified", "delivery_failed"):
        lines.append(t("detail.channel", channel=data.get("channel", "?"),
                       attempt=data.get("attempt", "?")))
        for outcome in data.get("outcomes") or []:
            if isinstance(outcome, Mapping) and not outcome.get("ok"):
                reason = redact_text(str(outcome.get("reason") or ""))
                lines.append(f"{redact_url(str(outcome.get('url', '')))}: {reason}")
        if data.get("retry_at"):
            lines.append(t("detail.retry", at=when(data["retry_at"], lang)))
    elif kind == "escalated":
        step = _int(data.get("step"))
        lines.append(t("detail.step", step=(step or 0) + 1,
                       channels=_channels(data.get("channels"))))
    elif kind == "reminded":
        lines.append(t("detail.channels", channels=_channels(data.get("channels"))))
    elif kind == "silenced" and data.get("silence") is not None:
        lines.append(t("detail.silence", id=data["silence"]))
    elif kind == "inhibited" and data.get("inhibitor") is not None:
        lines.append(t("detail.inhibitor", id=data["inhibitor"]))
    elif kind == "released" and data.get("by") in ("silence", "inhibition"):
        held = _number(data.get("held_seconds")) or 0.0
        lines.append(t(f"detail.released_{data['by']}", id=data.get("id"),
                       held=round(held / 60)))
    if kind in ("notified", "delivery_failed") and data.get("digest") is not None:
        lines.append(t("detail.digest", id=data["digest"], channel=data.get("channel", "?")))
    return lines
