"""Scorecards for people: a terminal table, and a self-contained printable HTML page.

Kept apart from ``watcher.assessment.scorecard`` so the arithmetic stays free of layout; the
page embeds its style and needs nothing else, so it can be mailed or printed.
"""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import Environment, StrictUndefined

from watcher import indicators
from watcher.assessment.scorecard import CardItem, Scorecard
from watcher.indicators import Unit

_STATUS = {"pass": "pass", "fail": "FAIL", "no_data": "no data", "no_criterion": "no criterion"}


def number(metric: str, value: float | None) -> str:
    """A value as people read it: rates in percent, amounts with thousands separators."""
    if value is None:
        return "-"
    indicator = indicators.get(metric)
    if indicator is not None and indicator.unit is Unit.FRACTION:
        return f"{value * 100:.2f}%"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}"


def needs(item: CardItem) -> str:
    if item.comparator is None or item.threshold is None:
        return "each store its own" if item.basis == "per_store" else "-"
    return f"{item.comparator.value} {number(item.indicator, item.threshold)}"


def source(item: CardItem) -> str:
    if item.basis == "rule" and item.rule:
        return f"rule {item.rule}"
    return item.basis or "-"


def score_text(score: float | None) -> str:
    return "-" if score is None else f"{score:.2f}"


def grade_text(card: Scorecard) -> str:
    """The grade, its bonus, and why it is a band lower, if it is."""
    grading = card.grading
    if grading is None:
        return "grade - (nothing could be judged)"
    text = f"grade {grading.grade} (bonus x{grading.bonus:g})"
    if grading.downgraded:
        text += f", lowered one band from {grading.by_score}: {grading.downgraded}"
    return text


def card_text(card: Scorecard) -> str:
    head = [f"{card.operator}: {card.period} ({card.cycle.value}), tier {card.tier}, "
            f"stores {', '.join(card.stores) or '-'}",
            f"result {card.result.value.upper()}, score {score_text(card.score)} "
            f"(pass mark {card.pass_score:.2f}), {grade_text(card)}"]
    if card.grading is not None:
        head.append(f"means: {card.grading.meaning['en']}")
    head += [f"veto: {veto}" for veto in card.vetoes]  # Veto.__str__
    rows = [[i.indicator, number(i.indicator, i.value), needs(i), source(i),
             _STATUS[i.status.value], f"{i.weight:g}", ", ".join(i.stores) or "-"]
            for i in card.items]
    table = _columns(["indicator", "value", "needs", "from", "status", "weight", "stores"], rows)
    return "\n".join([*head, *table])


def team_text(cards: Sequence[Scorecard]) -> str:
    if not cards:
        return "(no operator has snapshots in this period)"
    rows = [[c.operator, c.tier, str(len(c.stores)), score_text(c.score), c.result.value,
             c.grade or "-", f"{c.grading.bonus:g}" if c.grading else "-",
             ", ".join(c.failing) or "-",
             ", ".join(dict.fromkeys(v.metric for v in c.vetoes)) or "-"]
            for c in cards]
    return "\n".join(_columns(["operator", "tier", "stores", "score", "result", "grade",
                               "bonus", "failing", "veto"], rows))


def _columns(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    return ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in [[h.upper() for h in header], *rows]]


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; }
.pass { color: #17662b; } .fail { color: #b00020; font-weight: bold; }
.incomplete, .no_data, .no_criterion { color: #777; }
section { page-break-inside: avoid; }
@media print { body { margin: 0; } }
</style></head><body>
<h1>{{ title }}</h1>
{% if cards|length > 1 %}
<table><tr><th>Operator</th><th>Tier</th><th>Stores</th><th>Score</th><th>Result</th>
<th>Grade</th><th>Bonus</th><th>Failing</th><th>Veto</th></tr>
{% for c in cards %}<tr><td><a href="#{{ c.operator }}">{{ c.operator }}</a></td>
<td>{{ c.tier }}</td><td class="num">{{ c.stores|length }}</td>
<td class="num">{{ score(c.score) }}</td><td class="{{ c.result.value }}">{{ c.result.value }}</td>
<td>{{ c.grade or "-" }}</td>
<td class="num">{{ "%g"|format(c.grading.bonus) if c.grading else "-" }}</td>
<td>{{ c.failing|join(", ") or "-" }}</td><td>{{ c.vetoes|length or "-" }}</td></tr>
{% endfor %}</table>
{% endif %}
{% for c in cards %}<section id="{{ c.operator }}">
<h2>{{ c.operator }}: {{ c.period }} ({{ c.cycle.value }})</h2>
<p>Tier <b>{{ c.tier }}</b>{% if c.level and c.level != c.tier %} (level {{ c.level }}){% endif %},
stores {{ c.stores|join(", ") or "-" }}. Result
<b class="{{ c.result.value }}">{{ c.result.value }}</b>, score {{ score(c.score) }}
(pass mark {{ "%.2f"|format(c.pass_score) }}); {{ grade(c) }}.</p>
{% if c.grading %}<p class="grade-meaning">{{ c.grading.meaning["en"] }}<br>
{{ c.grading.meaning["zh-CN"] }}</p>{% endif %}
{% for v in c.vetoes %}<p class="fail">Veto: {{ v }}</p>{% endfor %}
<table><tr><th>Indicator</th><th>指标</th><th>Value</th><th>Needs</th><th>From</th>
<th>Status</th><th>Weight</th><th>Stores</th></tr>
{% for i in c.items %}<tr><td>{{ i.name_en }}</td><td>{{ i.name_zh }}</td>
<td class="num">{{ number(i.indicator, i.value) }}</td><td>{{ needs(i) }}</td>
<td>{{ source(i) }}</td><td class="{{ i.status.value }}">{{ status[i.status.value] }}</td>
<td class="num">{{ "%g"|format(i.weight) }}</td><td>{{ i.stores|join(", ") or "-" }}</td></tr>
{% endfor %}</table></section>
{% endfor %}
</body></html>
"""

_ENV = Environment(autoescape=True, undefined=StrictUndefined)
_TEMPLATE = _ENV.from_string(_PAGE)


def html_page(title: str, cards: Sequence[Scorecard]) -> str:
    return _TEMPLATE.render(title=title, cards=cards, number=number, needs=needs,
                            source=source, score=score_text, status=_STATUS,
                            grade=grade_text)
