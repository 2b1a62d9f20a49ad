"""The monthly verdict: the operator's monthly scorecard, as the PIP rule counts it.

One verdict per operator and month, and only one: the ``result`` of the card
``scorecard.build_card`` makes for the month is the monthly assessment. The PIP
streak counts failed monthly cards and nothing else (``streaks``); the card, the
API, the page and the PIP's evidence all state that same result.

* ``fail`` counts towards a streak (a score under the pass mark, or a veto: a
  major violation);
* ``pass`` breaks it;
* ``incomplete`` (nothing on the card could be judged) breaks it too, like a month
  with no snapshots: we do not assume a month we could not judge was failed. A live
  PIP is neither resolved nor extended by such a month; its timeline says so.

The pipeline recomputes the card of each operator's month a batch changed (and only
those), keeps its result in the ``monthly_cards`` table, and judges streaks on the
stored results. Pure functions here; the store edge is ``watcher.pipeline``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from watcher.assessment.scorecard import CardResult, ItemStatus, Scorecard
from watcher.period import Period, PeriodKind
from watcher.snapshot import Comparator, Snapshot

FAILED = CardResult.FAIL.value
INCOMPLETE = CardResult.INCOMPLETE.value


def months_of(snapshots: Iterable[Snapshot]) -> dict[tuple[str, str], Snapshot]:
    """``(operator, month) -> the last snapshot that changed it``: the monthly cards a
    batch changed. A day belongs to its month; a quarter or a year is no month's."""
    changed: dict[tuple[str, str], Snapshot] = {}
    for snap in snapshots:
        if snap.operator and snap.period.kind in (PeriodKind.MONTH, PeriodKind.DAY):
            month = Period.month(snap.period.start.year, snap.period.start.month)
            changed[(snap.operator, month.text)] = snap
    return changed


def card_evidence(card: Scorecard) -> list[dict[str, Any]]:
    """Why a month's card failed, one entry per failing indicator and per veto, each
    stating the card's result and score (nothing for a card that did not fail)."""
    if card.result is not CardResult.FAIL:
        return []
    verdict = {"result": card.result.value, "score": card.score, "grade": card.grade}
    entries: list[dict[str, Any]] = [
        {"period": card.period, "store": ", ".join(item.stores) or None,
         "metric": item.indicator, "value": item.value, "target": item.threshold,
         "comparator": item.comparator.value if item.comparator else None, **verdict}
        for item in card.items if item.status is ItemStatus.FAIL]
    entries += [{"period": card.period, "store": veto.store, "metric": veto.metric,
                 "value": veto.value, "target": 0, "comparator": Comparator.LE.value,
                 "rule": veto.rule, "major_violation": True, **verdict}
                for veto in card.vetoes]
    return entries


def card_row(card: Scorecard, now: datetime) -> dict[str, Any]:
    """The ``monthly_cards`` row of a monthly card."""
    return {"operator": card.operator, "period": card.period,
            "period_start": Period.parse(card.period).start, "result": card.result.value,
            "score": card.score, "grade": card.grade, "evidence": card_evidence(card),
            "updated_at": now}


def failed(results: dict[str, str]) -> dict[str, bool]:
    """``month -> failed`` from ``month -> card result``: what the streak counts."""
    return {month: result == FAILED for month, result in results.items()}
