"""What the scorecard pages show, as plain data: the period asked for, rows, card lines.

The arithmetic is ``watcher.assessment.scorecard``'s and the numbers are formatted as the CLI
formats them (``watcher.assessment.scorecard_report``); this module only chooses the words,
in the visitor's language, so the page can be checked without a browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, urlencode

from watcher import echo
from watcher.assessment.scorecard import CardItem, Scorecard, Veto, card_period
from watcher.assessment.scorecard_report import needs, number, score_text
from watcher.errors import InputError
from watcher.period import Period
from watcher.web.i18n import MESSAGES, translator
from watcher.web.views import indicator_name

Translate = Callable[..., str]
PERIOD_MAX = 20
# a snapshot's operator name (``watcher.snapshot.Name``): anything else has no card
_OPERATOR = re.compile(r"^[^\x00-\x1f]{1,200}$")


def default_period(today: date) -> str:
    """The last full month before ``today``: the card a manager usually wants."""
    return Period.month(today.year, today.month).shift_months(-1).text


def chosen_period(text: str) -> Period:
    """The period typed in the form; anything but a month, quarter or year names the field."""
    if len(text) > PERIOD_MAX or not text.isprintable():
        raise InputError(f"is longer than {PERIOD_MAX} characters or not printable",
                         field="period")
    return card_period(text)


def printable(text: str) -> str:
    """Text typed into a URL, fit to be shown back: control characters as U+FFFD."""
    return echo.shown(text)


def known_operator(name: str) -> bool:
    return bool(_OPERATOR.match(name)) and name == name.strip()


def card_path(operator: str) -> str:
    """Quoted whole: an operator's name may hold a slash, a ``?`` or a ``#``."""
    return f"/scorecards/{quote(operator, safe='')}"


def card_url(operator: str, period: str) -> str:
    return f"{card_path(operator)}?{urlencode({'period': period})}"


def team_url(period: str | None) -> str:
    return "/scorecards" + (f"?{urlencode({'period': period})}" if period else "")


def label(t: Translate, lang: str, key: str, fallback: str) -> str:
    """``key`` translated, or ``fallback`` when no catalogue has it (a configured tier)."""
    return t(key) if key in MESSAGES[lang] else fallback


@dataclass(frozen=True, slots=True)
class TeamLine:
    operator: str
    url: str
    tier: str
    stores: str
    score: str
    result: str
    result_label: str
    grade: str
    bonus: str
    failing: tuple[str, ...]
    vetoes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ItemLine:
    indicator: str
    name: str
    value: str
    needs: str
    source: str
    status: str
    status_label: str
    weight: str
    stores: str


@dataclass(frozen=True, slots=True)
class CardView:
    card: Scorecard
    cycle: str
    tier: str
    stores: str
    score: str
    pass_score: str
    result_label: str
    grade: str  # the grade and its bonus, or why there is none
    grade_meaning: str | None
    grade_lowered: str | None  # why the grade is a band below its score's
    vetoes: tuple[str, ...]
    items: tuple[ItemLine, ...]


def team_lines(cards: Sequence[Scorecard], lang: str) -> list[TeamLine]:
    t = translator(lang)
    return [TeamLine(
        operator=c.operator, url=card_url(c.operator, c.period),
        tier=label(t, lang, f"tier.{c.tier}", c.tier), stores=", ".join(c.stores) or "-",
        score=score_text(c.score), result=c.result.value,
        result_label=t(f"result.{c.result.value}"), grade=c.grade or "-",
        bonus=bonus_text(c.grading.bonus) if c.grading else "-",
        failing=tuple(indicator_name(m, lang) for m in c.failing),
        vetoes=tuple(dict.fromkeys(indicator_name(v.metric, lang) for v in c.vetoes)))
        for c in cards]


def bonus_text(bonus: float) -> str:
    return f"{bonus:g}"


def card_view(card: Scorecard, lang: str) -> CardView:
    t = translator(lang)
    grading = card.grading
    return CardView(
        card=card, cycle=t(f"cycle.{card.cycle.value}"),
        tier=label(t, lang, f"tier.{card.tier}", card.tier),
        stores=", ".join(card.stores) or "-", score=score_text(card.score),
        pass_score=f"{card.pass_score:.2f}", result_label=t(f"result.{card.result.value}"),
        grade=(t("card.grade_of", grade=grading.grade, bonus=bonus_text(grading.bonus))
               if grading else t("card.grade_none")),
        grade_meaning=(grading.meaning.get(lang) or grading.meaning.get("en")
                       if grading else None),
        grade_lowered=(t("card.grade_lowered", by_score=grading.by_score,
                         reason=veto_text(card.vetoes[0], lang))
                       if grading and grading.downgraded and card.vetoes else None),
        vetoes=tuple(veto_text(v, lang) for v in card.vetoes),
        items=tuple(_item_line(i, lang, t) for i in card.items))


def veto_text(veto: Veto, lang: str) -> str:
    """A veto in the visitor's words."""
    return translator(lang)("card.veto", metric=indicator_name(veto.metric, lang),
                            value=f"{veto.value:g}", store=veto.store, period=veto.period)


def _item_line(item: CardItem, lang: str, t: Translate) -> ItemLine:
    if item.basis == "per_store":
        needed, source = t("card.needs.per_store"), t("card.from.per_store")
    else:
        needed = needs(item)
        source = (t("card.from.rule", rule=item.rule or "") if item.basis == "rule"
                  else t(f"card.from.{item.basis}") if item.basis else "-")
    return ItemLine(
        indicator=item.indicator, name=indicator_name(item.indicator, lang),
        value=number(item.indicator, item.value), needs=needed, source=source,
        status=item.status.value, status_label=t(f"item.{item.status.value}"),
        weight=f"{item.weight:g}", stores=", ".join(item.stores) or "-")
