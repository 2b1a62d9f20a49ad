"""A manager's monthly report: the team's cards for a closed month, and the PIPs to act on.

One line per operator (grade where the card has one, score, result, failing
indicators, vetoes), then the PIPs that need the manager: recommendations not
yet started, and plans with a checkpoint or an end due within the coming month
(or overdue). The numbers are the cards' (``watcher.assessment.scorecard``) and
the PIP statuses are ``watcher.assessment.pip.status_of``: nothing here judges
anything again. Pure; the store edge is ``watcher.monthly``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from jinja2 import Environment, StrictUndefined
from pydantic import BaseModel, ConfigDict

from watcher.assessment import pip
from watcher.assessment.roster import Roster
from watcher.assessment.scorecard import Scorecard
from watcher.assessment.scorecard_report import _columns, score_text
from watcher.incidents import Incident

HORIZON_DAYS = 31  # a plan step due within this many days is "due for review"


class ReportRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    operator: str
    name: str | None
    tier: str
    grade: str | None  # the card's (watcher.assessment.grades); none when incomplete
    score: float | None
    result: str
    failing: tuple[str, ...]
    vetoes: tuple[str, ...]


class PipDue(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident: int
    operator: str
    status: pip.PlanStatus
    due: date | None  # the checkpoint or end due; None for a recommendation
    what: str


class MonthlyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    period: str
    team: str | None = None
    manager: str | None = None
    rows: tuple[ReportRow, ...]
    pips: tuple[PipDue, ...]

    @property
    def title(self) -> str:
        whose = f"team {self.team}" if self.team else (
            f"manager {self.manager}" if self.manager else "all operators")
        return f"Monthly report {self.period}: {whose}"


def row_of(card: Scorecard, roster: Roster) -> ReportRow:
    person = roster.get(card.operator)
    return ReportRow(operator=card.operator, name=person.name if person else None,
                     tier=card.tier, grade=card.grade,
                     score=card.score, result=card.result.value, failing=card.failing,
                     vetoes=tuple(str(v) for v in card.vetoes))


def pips_due(pips: Sequence[tuple[Incident, pip.Plan | None]], today: date,
             horizon_days: int = HORIZON_DAYS) -> list[PipDue]:
    """Recommendations awaiting a plan, and plans with a step due within the horizon."""
    until = today + timedelta(days=horizon_days)
    found: list[PipDue] = []
    for incident, plan in pips:
        operator = incident.operator or incident.subject
        status = pip.status_of(incident, plan)
        if status is pip.PlanStatus.RECOMMENDED:
            found.append(PipDue(incident=incident.id, operator=operator, status=status,
                                due=None, what="recommended: start a plan or dismiss it"))
            continue
        if plan is None or not plan.active:
            continue
        steps = [(c, "checkpoint review") for c in plan.checkpoints if plan.reviewed(c) is None]
        steps.append((plan.ends_on, "plan ends: close it as passed, extended or failed"))
        for due, what in sorted(steps):
            if due <= until:
                found.append(PipDue(incident=incident.id, operator=operator, status=status,
                                    due=due, what=what))
                break
    return found


def build_report(period: str, cards: Sequence[Scorecard], roster: Roster,
                 pips: Sequence[tuple[Incident, pip.Plan | None]], today: date, *,
                 team: str | None = None, manager: str | None = None) -> MonthlyReport:
    operators = {c.operator for c in cards}
    if manager is not None:
        operators |= {p.operator for p in roster.managers().get(manager, [])}
    mine = [(i, p) for i, p in pips if (i.operator or i.subject) in operators]
    return MonthlyReport(period=period, team=team, manager=manager,
                         rows=tuple(row_of(c, roster) for c in cards),
                         pips=tuple(pips_due(mine, today)))


def report_text(report: MonthlyReport) -> str:
    lines = [report.title, ""]
    if report.rows:
        rows = [[r.operator + (f" ({r.name})" if r.name else ""), r.tier, r.grade or "-",
                 score_text(r.score), r.result, ", ".join(r.failing) or "-",
                 "; ".join(r.vetoes) or "-"] for r in report.rows]
        lines += _columns(["operator", "tier", "grade", "score", "result", "failing",
                           "veto"], rows)
    else:
        lines.append("(no operator has snapshots in this month)")
    lines += ["", "PIPs due for review:"]
    lines += [f"  #{p.incident} {p.operator} [{p.status.value}] "
              f"{p.due.isoformat() + ' ' if p.due else ''}{p.what}" for p in report.pips] \
        or ["  (none)"]
    return "\n".join(lines)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ r.title }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } .fail { color: #b00020; font-weight: bold; }
</style></head><body>
<h1>{{ r.title }}</h1>
<table><tr><th>Operator</th><th>Tier</th><th>Grade</th><th>Score</th><th>Result</th>
<th>Failing</th><th>Veto</th></tr>
{% for row in r.rows %}<tr><td>{{ row.operator }}{% if row.name %} ({{ row.name }}){% endif %}</td>
<td>{{ row.tier }}</td><td>{{ row.grade or "-" }}</td><td>{{ score(row.score) }}</td>
<td class="{{ row.result }}">{{ row.result }}</td><td>{{ row.failing|join(", ") or "-" }}</td>
<td>{{ row.vetoes|join("; ") or "-" }}</td></tr>
{% else %}<tr><td colspan="7">No operator has snapshots in this month.</td></tr>{% endfor %}
</table>
<h2>PIPs due for review</h2>
<ul>{% for p in r.pips %}<li>#{{ p.incident }} {{ p.operator }} [{{ p.status.value }}]
{{ p.due or "" }} {{ p.what }}</li>{% else %}<li>None.</li>{% endfor %}</ul>
</body></html>
"""
_TEMPLATE = Environment(autoescape=True, undefined=StrictUndefined).from_string(_PAGE)


def report_html(report: MonthlyReport) -> str:
    return _TEMPLATE.render(r=report, score=score_text)
