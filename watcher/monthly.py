"""The monthly report's edge: build it from the store, and send each manager theirs.

When a month closes (``report: {day: 3, hour: 9}``: the 3rd of the next month,
09:00 UTC, leaving time for late exports), each manager on the roster gets
their people's report through the routes, matched as ``audience: manager``
with their ``manager`` and ``team``. Sent once per manager and month: the
delivery is recorded in the store (``report_deliveries``) in the transaction
that enqueues its notifications, so a restart or a second replica never sends
it again, and a daemon that was down on the day sends it when it is back.
"""

from __future__ import annotations

from datetime import date, datetime

import structlog
from sqlalchemy import Connection

from watcher.alerts import Alert, AlertKind
from watcher.assessment import pip
from watcher.assessment.monthly_report import (
    WORDS,
    MonthlyReport,
    build_report,
    report_text,
    report_title,
)
from watcher.assessment.scorecard import team_cards
from watcher.config import route
from watcher.incidents import Incident
from watcher.period import Period
from watcher.runtime import Runtime
from watcher.store import plans as stored
from watcher.store import repository as repo

log = structlog.get_logger(__name__)


def streak_rules(runtime: Runtime) -> list[str]:
    return [r.id for r in runtime.pipeline.engine.pack.rules if r.kind == "streak"]


def _live_pips(conn: Connection, rules: list[str], now: datetime
               ) -> list[tuple[Incident, pip.Plan | None]]:
    live = repo.recommendations(conn, rules, resolved_since=now, limit=100_000)
    plans = stored.plans_of(conn, [i.id for i in live])
    return [(i, plans.get(i.id)) for i in live]


def report_for(conn: Connection, runtime: Runtime, period: Period, now: datetime, *,
               team: str | None = None, manager: str | None = None) -> MonthlyReport:
    """The report of one team, one manager's people, or everyone (neither given)."""
    pipeline = runtime.pipeline
    roster = pipeline.roster
    cards = team_cards(conn, period, pipeline.engine.pack, pipeline.targets,
                       runtime.settings.scorecard, roster, team)
    if manager is not None:
        mine = {p.operator for p in roster.managers().get(manager, [])}
        cards = [c for c in cards if c.operator in mine]
    return build_report(period.text, cards, roster, _live_pips(conn, streak_rules(runtime), now),
                        now.date(), team=team, manager=manager)


def closed_month(now: datetime, day: int, hour: int) -> Period | None:
    """The month whose report is due at ``now``: last month, from its day and hour on."""
    if (now.day, now.hour) < (day, hour):
        return None
    first = date(now.year, now.month, 1)
    return Period.parse(first.strftime("%Y-%m")).shift_months(-1)


def report_alert(report: MonthlyReport, labels: dict[str, str], now: datetime) -> Alert:
    """The report as a message: its title and text in each language a channel may speak
    (``notes.monthly_report`` of strings.yaml picks the channel's)."""
    return Alert(kind=AlertKind.REPORT, rule="monthly-report", severity="info",
                 audience="manager", period=report.period,
                 title={lang: report_title(report, lang) for lang in WORDS},
                 labels=labels, note=report_text(report), note_key="monthly_report",
                 note_args={"en": report_text(report, "en"),
                            "zh": report_text(report, "zh-CN")}, at=now)


def send_due(runtime: Runtime, now: datetime) -> int:
    """Send each manager's report for the month just closed, once; the number sent."""
    settings = runtime.settings
    if not settings.report.enabled:
        return 0
    period = closed_month(now, settings.report.day, settings.report.hour)
    managers = runtime.pipeline.roster.managers()
    if period is None or not managers:
        return 0
    with runtime.db.engine.connect() as conn:
        done = stored.reported(conn, period.text)
    sent = 0
    for manager, people in sorted(managers.items()):
        if manager in done:
            continue
        with runtime.db.engine.begin() as conn:
            if not stored.claim_report(conn, manager, period.text, now):
                continue
            report = report_for(conn, runtime, period, now, manager=manager)
            teams = sorted({p.team for p in people if p.team})
            labels: dict[str, str | None] = {
                "audience": "manager", "manager": manager, "rule": "monthly-report",
                "severity": "info", "team": teams[0] if len(teams) == 1 else None}
            alert = report_alert(report, {k: v for k, v in labels.items() if v}, now)
            channels = route(settings, labels, each=False)  # a document
            repo.insert_notifications(conn, [repo.notification_row(None, None, channel, alert,
                                                                   now)
                                             for channel in channels])
            log.info("monthly_report_sent", manager=manager, period=period.text,
                     channels=channels, operators=len(report.rows))
            sent += 1
    return sent
