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
from typing import Literal

from jinja2 import Environment, StrictUndefined
from pydantic import BaseModel, ConfigDict

from watcher import indicators
from watcher.assessment import pip
from watcher.assessment.roster import Roster
from watcher.assessment.scorecard import Scorecard, Veto
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
    vetoes: tuple[Veto, ...]


class PipDue(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident: int
    operator: str
    status: pip.PlanStatus
    due: date | None  # the checkpoint or end due; None for a recommendation
    step: Literal["recommended", "checkpoint", "ends"]

    @property
    def what(self) -> str:
        return WORDS["en"][self.step]


class MonthlyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    period: str
    team: str | None = None
    manager: str | None = None
    rows: tuple[ReportRow, ...]
    pips: tuple[PipDue, ...]

    @property
    def title(self) -> str:
        return report_title(self)


def row_of(card: Scorecard, roster: Roster) -> ReportRow:
    person = roster.get(card.operator)
    return ReportRow(operator=card.operator, name=person.name if person else None,
                     tier=card.tier, grade=card.grade,
                     score=card.score, result=card.result.value, failing=card.failing,
                     vetoes=card.vetoes)


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
                                due=None, step="recommended"))
            continue
        if plan is None or not plan.active:
            continue
        steps: list[tuple[date, Literal["checkpoint", "ends"]]] = [
            (c, "checkpoint") for c in plan.checkpoints if plan.reviewed(c) is None]
        steps.append((plan.ends_on, "ends"))
        for due, step in sorted(steps):
            if due <= until:
                found.append(PipDue(incident=incident.id, operator=operator, status=status,
                                    due=due, step=step))
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


# The report's words in each language of the channels (a zh-CN channel reads no English).
WORDS: dict[str, dict[str, str]] = {
    "en": {"title": "Monthly report {period}: {whose}", "team": "team {name}",
           "manager": "manager {name}", "all": "all operators",
           "columns": "operator|tier|grade|score|result|failing|veto",
           "none_month": "(no operator has snapshots in this month)",
           "pips": "PIPs due for review:", "none": "(none)",
           "veto": "{metric} = {value} at {store} in {period}",
           "pass": "pass", "fail": "fail", "incomplete": "incomplete",
           "recommended": "recommended: start a plan or dismiss it",
           "checkpoint": "checkpoint review",
           "ends": "plan ends: close it as passed, extended or failed",
           "junior": "junior", "mid": "mid", "senior": "senior"},
    "zh-CN": {"title": "{period} 月度考核报告：{whose}", "team": "团队 {name}",
              "manager": "主管 {name}", "all": "全部运营",
              "columns": "运营|职级|等级|得分|结果|未达标指标|否决",
              "none_month": "（本月没有运营的数据）",
              "pips": "待处理的绩效改进计划：", "none": "（无）",
              "veto": "{metric} = {value}（{store}，{period}）",
              "pass": "通过", "fail": "不通过", "incomplete": "不完整",
              "recommended": "建议启动：请启动改进计划或驳回",
              "checkpoint": "检查点评审",
              "ends": "计划到期：请结案为通过、延期或未通过",
              "junior": "初级", "mid": "中级", "senior": "高级"},
}


def report_title(report: MonthlyReport, language: str = "en") -> str:
    words = WORDS.get(language, WORDS["en"])
    whose = (words["team"].format(name=report.team) if report.team else
             words["manager"].format(name=report.manager) if report.manager else words["all"])
    return words["title"].format(period=report.period, whose=whose)


def report_text(report: MonthlyReport, language: str = "en") -> str:
    """The report as plain text in ``language`` (en or zh-CN): metric ids become their
    display names there, as in every message."""
    words = WORDS.get(language, WORDS["en"])

    def named(metric: str) -> str:
        found = indicators.get(metric)
        return found.name(language) if found is not None else metric

    lines = [report_title(report, language), ""]
    if report.rows:
        rows = [[r.operator + (f" ({r.name})" if r.name else ""), words.get(r.tier, r.tier),
                 r.grade or "-", score_text(r.score), words.get(r.result, r.result),
                 ", ".join(named(m) for m in r.failing) or "-",
                 "; ".join(words["veto"].format(metric=named(v.metric), value=f"{v.value:g}",
                                                store=v.store, period=v.period)
                           for v in r.vetoes) or "-"] for r in report.rows]
        lines += _columns(words["columns"].split("|"), rows)
    else:
        lines.append(words["none_month"])
    lines += ["", words["pips"]]
    lines += [f"  #{p.incident} {p.operator} [{p.status.value}] "
              f"{p.due.isoformat() + ' ' if p.due else ''}{words[p.step]}" for p in report.pips] \
        or ["  " + words["none"]]
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
