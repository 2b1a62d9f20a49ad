"""Alert -> words: jinja2 templates that users edit, one per format, two languages.

Templates are data, not code: they live in a directory the caller names
(default: the built-in ones, package data) so a team can reword a
notification without a release. What they get is a flat, pre-formatted
context (``value`` is already ``"3.50%"``, evidence already carries its gap)
so that templates stay free of arithmetic, and so every format says the same
numbers the same way.

A template that breaks (a typo in an edited file) must not silence alerts:
rendering falls back to a built-in plain text and logs the error.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import structlog
import yaml
from jinja2.sandbox import SandboxedEnvironment

from watcher import defaults, indicators
from watcher.alerts import Alert, AlertKind, GroupItem, WeeklyLine
from watcher.errors import ConfigError
from watcher.indicators import Unit

log = structlog.get_logger(__name__)
T = TypeVar("T")

DEFAULT_TEMPLATES = defaults.templates()
FORMATS = ("text", "slack", "markdown", "html", "console")
STRINGS_FILE = "strings.yaml"
DIGEST = "digest"  # digest.j2: many alerts folded into one message, in every format
WEEKLY = "weekly"  # weekly.j2: a route's weekly digest, in every format
_BLANK_RUNS = re.compile(r"\n\s*\n(\s*\n)+")
SEVERITY_ICONS = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵"}
RESOLVED_ICON = "✅"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A subject (email subject, chat title) and a body in the asked format."""

    subject: str
    body: str


class Renderer:
    """Loads ``<format>.j2`` and ``strings.yaml`` from ``directory``; renders alerts.

    Template edits are picked up without a restart (jinja2 checks the file's
    mtime); ``strings.yaml`` is read once, at construction.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else DEFAULT_TEMPLATES
        if not self.directory.is_dir():
            raise ConfigError("the notification template folder does not exist",
                              file=str(self.directory))
        self.strings = _load_strings(self.directory / STRINGS_FILE)
        # A folder of templates made before digests existed still renders them: the
        # built-in digest template and words fill in what it lacks.
        builtin = _load_strings(DEFAULT_TEMPLATES / STRINGS_FILE)
        for language, words in builtin.items():
            for part in ("digest", "weekly"):
                if part in words:
                    self.strings.setdefault(language, {}).setdefault(part, words[part])
        self.env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(self.directory)),
                                        jinja2.FileSystemLoader(str(DEFAULT_TEMPLATES))]),
            autoescape=lambda name: bool(name) and str(name).startswith("html"),
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            auto_reload=True)
        self.env.filters["pad"] = pad
        self.env.filters["width"] = display_width
        for name in (*FORMATS, "subject", DIGEST, WEEKLY):
            try:
                self.env.get_template(f"{name}.j2")
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"template error: {exc.message}",
                                  file=str(self.directory / f"{name}.j2"),
                                  line=exc.lineno) from None
            except jinja2.TemplateNotFound:
                raise ConfigError("template missing", file=str(
                    self.directory / f"{name}.j2")) from None

    def words(self, language: str) -> dict[str, Any]:
        """The strings of ``language``, English for what it lacks."""
        base = dict(self.strings.get("en", {}))
        base.update(self.strings.get(language, {}))
        return base

    def render(self, alert: Alert, fmt: str, language: str, *, heading: bool = True,
               service: str = "", style: Callable[[str, str], str] | None = None,
               digest_items: int | None = None) -> Rendered:
        """``alert`` in ``fmt`` (one of ``FORMATS``) and ``language``.

        ``heading``: whether the body repeats the title (services that show the
        subject on their own, like a Slack attachment title, do not need it).
        ``service`` (``slack``, ``wecombot``…) lets a template use a service's
        extras. ``style(text, name)`` decorates text for the console. A digest
        names at most ``digest_items`` of its alerts (all it carries by default), a
        weekly digest as many incidents per list and stores, so that a channel can
        fit it to its service's size limit.
        """
        context = self.context(alert, language)
        context.update(heading=heading, service=service, fmt=fmt,
                       style=style or (lambda text, _name: text))
        template = f"{fmt}.j2"
        if alert.digest is not None:
            context.update(self.digest_context(alert, language, digest_items))
            template = f"{DIGEST}.j2"
        elif alert.weekly is not None:
            context.update(self.weekly_context(alert, language, digest_items))
            template = f"{WEEKLY}.j2"
        try:
            subject = self.env.get_template("subject.j2").render(context).strip()
            body = self.env.get_template(template).render(context).strip()
        except jinja2.TemplateError as exc:
            log.error("template_failed", format=fmt, language=language,
                      error=f"{type(exc).__name__}: {exc}", folder=str(self.directory))
            return fallback(alert, language)
        if fmt != "html":
            body = _BLANK_RUNS.sub("\n\n", body)
        return Rendered(subject=" ".join(subject.split()), body=body)

    def context(self, alert: Alert, language: str) -> dict[str, Any]:
        """Everything a template may use, formatted for ``language``."""
        t = self.words(language)
        resolved = alert.kind is AlertKind.RESOLVED
        evidence = [_evidence_row(e.period, e.metric, e.value, e.threshold, e.comparison,
                                  e.store, language, t) for e in alert.evidence]
        by_period: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(evidence, key=lambda r: (r["period"], r["metric_name"])):
            by_period.setdefault(row["period"], []).append(row)
        return {
            "alert": alert, "t": t, "lang": language,
            "title": group_title(alert.items, t, language) if alert.items
            else alert.text(language),
            "items": [{"id": i.incident_id, "severity": i.severity,
                       "severity_label": t.get("severity", {}).get(i.severity,
                                                                   i.severity.upper()),
                       "title": i.title.get(language) or i.title.get("en") or i.rule}
                      for i in alert.items],
            "kind": alert.kind.value,
            "kind_prefix": t.get("kind", {}).get(alert.kind.value, ""),
            "status": t.get("status", {}).get(alert.kind.value, alert.kind.value),
            "severity": alert.severity,
            "severity_label": t.get("severity", {}).get(alert.severity,
                                                        alert.severity.upper()),
            "icon": RESOLVED_ICON if resolved else SEVERITY_ICONS.get(alert.severity, "⚪"),
            "resolved": resolved,
            "rule": alert.rule, "audience": alert.audience,
            "store": alert.store, "platform": alert.platform, "operator": alert.operator,
            "metric": alert.metric,
            "metric_name": metric_name(alert.metric, language) if alert.metric else None,
            "value": format_value(alert.metric, alert.value) if alert.value is not None
            else None,
            "threshold": format_value(alert.metric, alert.threshold)
            if alert.threshold is not None else None,
            "period": alert.period, "incident_id": alert.incident_id,
            "link": alert.link, "note": note_text(alert, t, language), "labels": alert.labels,
            "runbook": alert.runbook.get(language) or alert.runbook.get("en"),
            "runbook_link": alert.runbook_link,
            "at": alert.at.strftime("%Y-%m-%d %H:%M UTC") if alert.at.utcoffset() is not None
            else alert.at.strftime("%Y-%m-%d %H:%M"),
            "is_pip": alert.rule.lower().startswith("pip"),
            "evidence": evidence,
            "evidence_by_period": list(by_period.items()),
            "months": sorted({row["period"] for row in evidence}),
            "indicators": sorted({row["metric_name"] for row in evidence}),
        }

    def digest_context(self, alert: Alert, language: str,
                       items: int | None) -> dict[str, Any]:
        """A digest's words and numbers (``digest.*`` of strings.yaml), its title too."""
        assert alert.digest is not None
        d, t = alert.digest, self.words(language)
        words = t.get("digest", {})
        severity = t.get("severity", {})
        shown = d.worst[:items] if items is not None else d.worst
        resolved = alert.labels.get("news") == "resolved"
        title = str(words.get("title_resolved" if resolved else "title", "{total}")).format(
            total=d.total)
        return {
            "title": title, "kind_prefix": "", "d": words, "digest_link": d.link,
            "total": d.total, "more": d.total - len(shown),
            "rules": [{"rule": r.rule, "count": r.count, "link": r.link,
                       "severity_label": severity.get(r.severity, r.severity.upper())}
                      for r in d.rules],
            "items": [{"incident_id": i.incident_id, "store": i.store or i.operator or "-",
                       "platform": i.platform, "rule": i.rule,
                       "severity_label": severity.get(i.severity, i.severity.upper()),
                       "metric_name": metric_name(i.metric, language) if i.metric else None,
                       "value": format_value(i.metric, i.value) if i.value is not None
                       else None,
                       "threshold": format_value(i.metric, i.threshold)
                       if i.threshold is not None else None} for i in shown],
        }


    def weekly_context(self, alert: Alert, language: str,
                       items: int | None) -> dict[str, Any]:
        """A weekly digest's words (``weekly.*`` of strings.yaml): its title, counts, the
        worst stores and each team's lists, each naming at most ``items`` lines."""
        assert alert.weekly is not None
        w, t = alert.weekly, self.words(language)
        words = t.get("weekly", {})
        severity = t.get("severity", {})

        def say(key: str, **args: Any) -> str:
            return str(words.get(key, key)).format_map(_Keep(args))

        def line(key: str, item: WeeklyLine) -> str:
            at = item.resolved_at if key == "resolved_line" else item.opened_at
            return say(key, id=item.incident_id,
                       severity=severity.get(item.severity, item.severity.upper()),
                       subject=item.store or item.operator or "-",
                       title=item.title.get(language) or item.title.get("en") or item.rule,
                       date=at.date().isoformat() if at else "-", days=item.age_days)

        def cut(found: list[T]) -> list[T]:
            return found[:items] if items is not None else found

        match = ", ".join(f"{k}={'|'.join(v)}" for k, v in sorted(w.match.items()))
        route = say("route_match", index=w.route, match=match) if match else say(
            "route", index=w.route)
        sections = []
        for s in w.sections:
            lists = []
            for key, name, count, found in (
                    ("opened_line", "opened", s.opened, s.opened_list),
                    ("open_line", "still_open", s.still_open, s.open_list),
                    ("resolved_line", "resolved", s.resolved, s.resolved_list)):
                shown = cut(found)
                if count:
                    lists.append({"name": say(name), "lines": [line(key, i) for i in shown],
                                  "more": count - len(shown)})
            sections.append({"team": say("team", team=s.team) if s.team else say("no_team"),
                             "totals": say("totals", opened=s.opened, open=s.still_open,
                                           resolved=s.resolved), "lists": lists})
        return {
            # a copy of strings.yaml from before "so far" words every week as closed
            "title": say("title_so_far" if not w.closed and "title_so_far" in words
                         else "title", week=w.week, route=route),
            "kind_prefix": "", "w": words,
            "totals": say("totals", opened=w.opened, open=w.still_open, resolved=w.resolved),
            "stores": [say("store", store=s.store, count=s.open,
                           severity=severity.get(s.worst, s.worst.upper()))
                       for s in cut(w.stores)],
            "sections": sections, "weekly_link": w.link,
            "nothing": not (w.opened or w.still_open or w.resolved),
        }


def note_text(alert: Alert, t: dict[str, Any], language: str) -> str | None:
    """The alert's note in ``language``: ``notes.<note_key>`` of strings.yaml filled with
    its arguments (a metric named in the language, a duration in its units); the note
    as recorded when the alert has no key (language-neutral, like a worsening's
    ``penalty_points: 3 → 6``) or the strings lack it."""
    template = t.get("notes", {}).get(alert.note_key) if alert.note_key else None
    if not isinstance(template, str):
        return alert.note
    args: dict[str, Any] = {**alert.note_args}
    if "metric" in args:
        args["metric_name"] = metric_name(str(args["metric"]), language)
    if "held" in args:
        args["held"] = format_span(float(args["held"]), t)
    try:
        return template.format_map(_Keep(args))
    except (ValueError, IndexError):
        log.error("note_failed", key=alert.note_key, language=language)
        return alert.note


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def format_span(seconds: float, t: dict[str, Any]) -> str:
    """``7500`` s -> ``2h 5m`` / ``2小时5分钟``, in the units of strings.yaml ``span``
    (``t={}``: English, for timeline notes)."""
    units = t.get("span", {})
    minutes = max(int(seconds // 60), 0)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [str(units.get(unit, "{n}" + unit)).format(n=n)
             for unit, n in (("d", days), ("h", hours), ("m", mins)) if n]
    if not parts:
        parts = [str(units.get("s", "{n}s")).format(n=int(seconds))]
    return str(units.get("join", " ")).join(parts)


def group_title(items: list[GroupItem], t: dict[str, Any], language: str) -> str:
    """What a grouped message groups: ``3 stores: account health score below 90`` (one
    rule, several subjects), ``amz-us-01: 2 new incidents`` (one store), or a count."""
    words = t.get("group", {})
    rules = {i.rule for i in items}
    stores = {i.store for i in items}
    subjects = stores if None not in stores else {i.operator for i in items}
    if len(rules) == 1 and len(subjects) > 1:
        return str(words.get("by_rule", "{count} {subjects}: {what}")).format(
            count=len(items), what=_what(items, words, language),
            subjects=words.get("stores" if None not in stores else "operators", ""))
    if len(stores) == 1 and None not in stores:
        return str(words.get("by_store", "{store}: {count} new incidents")).format(
            store=next(iter(stores)), count=len(items))
    return str(words.get("other", "{count} new incidents")).format(count=len(items))


def _what(items: list[GroupItem], words: dict[str, Any], language: str) -> str:
    """One rule's condition in words: ``account health score below 90``, else its id."""
    metrics = {i.metric for i in items}
    thresholds = {i.threshold for i in items}
    metric, threshold = next(iter(metrics)), next(iter(thresholds))
    indicator = indicators.get(metric) if metric else None
    if len(metrics) > 1 or len(thresholds) > 1 or indicator is None or threshold is None:
        return items[0].rule
    name = indicator.name(language)
    if not language.lower().startswith("zh") and name[1:2].islower():
        name = name[0].lower() + name[1:]  # mid-sentence: "account health score"
    side = "below" if indicator.direction is indicators.Direction.HIGHER_IS_BETTER else "above"
    return str(words.get(side, "{metric} " + side + " {threshold}")).format(
        metric=name, threshold=format_value(metric, threshold))


def _load_strings(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("localized strings missing", file=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"not valid YAML: {exc}", file=str(path),
                          line=mark.line + 1 if mark is not None else None) from None
    if not isinstance(data, dict) or not isinstance(data.get("en"), dict):
        raise ConfigError("a mapping of language -> strings, with 'en'", file=str(path))
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def metric_name(metric: str, language: str) -> str:
    indicator = indicators.get(metric)
    return indicator.name(language) if indicator is not None else metric


def _is_fraction(metric: str | None) -> bool:
    indicator = indicators.get(metric) if metric else None
    return indicator is not None and indicator.unit is Unit.FRACTION


def format_value(metric: str | None, value: float | None) -> str:
    """``0.035`` of a rate -> ``3.50%``; ``118000`` -> ``118,000``; ``4.25`` -> ``4.25``.

    The same rule as rule messages (``watcher.evaluation.format_value``), so a
    notification's numbers match its title.
    """
    if value is None:
        return "-"
    if _is_fraction(metric):
        return f"{value * 100:.2f}%"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def format_gap(metric: str | None, value: float, target: float, t: dict[str, Any]) -> str:
    """How far from target, signed: ``-32,000, -21.3%`` or ``+0.50 pp``."""
    diff = value - target
    if _is_fraction(metric):
        return f"{diff * 100:+.2f} {t.get('pp', 'pp')}"
    sign = "+" if diff >= 0 else "-"
    text = f"{sign}{format_value(None, abs(diff))}"
    if target:
        text += f", {diff / abs(target) * 100:+.1f}%"
    return text


def _evidence_row(period: str, metric: str, value: float, target: float, comparison: str,
                  store: str | None, language: str, t: dict[str, Any]) -> dict[str, Any]:
    return {"period": period, "metric": metric, "metric_name": metric_name(metric, language),
            "value": format_value(metric, value), "target": format_value(metric, target),
            "comparison": comparison, "gap": format_gap(metric, value, target, t),
            "store": store}


def fallback(alert: Alert, language: str) -> Rendered:
    """Plain text from code alone, for when the templates cannot render."""
    lines = [alert.text(language)]
    for label, value in (("store", alert.store), ("platform", alert.platform),
                         ("operator", alert.operator), ("metric", alert.metric),
                         ("period", alert.period), ("incident", alert.incident_id),
                         ("link", alert.link)):
        if value is not None:
            lines.append(f"{label}: {value}")
    if alert.value is not None:
        lines.append(f"value: {format_value(alert.metric, alert.value)} "
                     f"(threshold {format_value(alert.metric, alert.threshold)})")
    for e in alert.evidence:
        lines.append(f"- {e.period} {e.metric}: {format_value(e.metric, e.value)} vs "
                     f"{format_value(e.metric, e.threshold)}")
    return Rendered(subject=f"[{alert.severity.upper()}] {alert.text(language)}",
                    body="\n".join(lines))


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: Any, width: int) -> str:
    """Left-align ``text`` in ``width`` terminal columns (CJK-aware, for the console)."""
    shown = str(text)
    return shown + " " * max(width - display_width(shown), 0)
