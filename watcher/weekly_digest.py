"""A route's weekly digest: its week in one message, per team.

A team that asks for ``digest: weekly`` on a route reads, once a week, what that
route's incidents did in the ISO week just closed (``2026-W47``, Monday 00:00 to
the next Monday 00:00 UTC, as ``watcher.period`` writes weeks): what opened in
it, what is still open (with its age), what was resolved in it, the stores with
the most and worst open incidents, per roster team.

Which incidents count is decided once, by the store's incident filters that
``GET /v1/incidents`` uses (``since``/``until`` for opened, ``status`` for still
open, ``resolved_since``/``resolved_until`` for resolved: ``watcher.weekly``
reads them), then here by the route's ``match`` on the same labels that route
the incident's own messages (``watcher.apply.labels_of``). Pure: incidents in,
a frozen ``WeeklyDigest`` out; the renderer words it (``weekly.*`` of
strings.yaml) and the channel names fewer incidents to fit its service's size.

Unlike the storm digest (``watcher.digest``), which folds alerts waiting for a
busy channel, this one is a scheduled summary: a document of its own.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from watcher.alerts import (
    SEVERITY_RANK,
    Alert,
    AlertKind,
    WeeklyDigest,
    WeeklyLine,
    WeeklySection,
    WeeklyStore,
)
from watcher.apply import labels_of
from watcher.assessment.roster import Roster
from watcher.config import Route
from watcher.echo import shown
from watcher.incidents import Incident
from watcher.limits import WEEKLY_MAX_LINES, WEEKLY_MAX_STORES
from watcher.numbers import to_ascii
from watcher.period import Period, PeriodKind

# The filters of the page (watcher/web/views.py ListQuery) a route's match can carry.
_PAGE_FILTERS = ("severity", "store", "operator", "rule")


def week_bounds(week: Period) -> tuple[datetime, datetime]:
    """Monday 00:00 UTC of ``week`` and of the week after (exclusive)."""
    if week.kind is not PeriodKind.WEEK:
        raise ValueError(f"{week.text} is not a week (YYYY-Www)")
    start = datetime.combine(week.start, time(), UTC)
    return start, start + timedelta(days=7)


_MONTH_LIKE = re.compile(r"^([0-9]{4})-?([0-9]{1,2})$")


def chosen_week(text: str, now: datetime) -> Period:
    """A week asked for by name (``watcher digest --week``): an ISO week that has begun.
    A week still running is allowed (its digest says "so far"); one that has not begun
    has nothing to say yet, and ``2026-48`` is not guessed to be week 48."""
    ascii_text = to_ascii(text).strip()
    if re.match(r"^[0-9]{4}-W", ascii_text):
        week = Period.parse(ascii_text)  # its own message: 2026-W54 is no real week
    else:
        found = _MONTH_LIKE.match(ascii_text)
        example = (f"{found.group(1)}-W{int(found.group(2)):02d}"
                   if found and 1 <= int(found.group(2)) <= 53 else "2026-W48")
        raise ValueError(f"'{shown(text, 40)}' is not an ISO week: write YYYY-Www "
                         f"(e.g. {example})")
    start, _ = week_bounds(week)
    if start > now:
        raise ValueError(f"{week.text} has not begun (it starts {start.date().isoformat()})")
    return week


def due_week(now: datetime, day: int, hour: int) -> Period:
    """The week whose digest is due at ``now`` for a route sending on ``day`` (1-7, ISO)
    at ``hour`` (UTC): the week before the latest such moment. A daemon that was down
    at that moment sends it when it is back (the latest moment is still the same)."""
    monday = datetime.combine(now.date() - timedelta(days=now.weekday()), time(), UTC)
    moment = monday + timedelta(days=day - 1, hours=hour)
    if moment > now:
        moment -= timedelta(days=7)
    return Period.week_of((moment - timedelta(days=7)).date())


def match_text(route: Route) -> str:
    """``audience=compliance, team=east|west``: the route as its config says it."""
    return ", ".join(f"{k}={'|'.join(v)}" for k, v in sorted(route.match.items()))


def _worst_first(incident: Incident) -> tuple[int, datetime, int]:
    return (-SEVERITY_RANK.get(incident.severity, 0), incident.opened_at, incident.id)


def _line(incident: Incident, now: datetime, *, age: bool = False) -> WeeklyLine:
    return WeeklyLine(incident_id=incident.id, severity=incident.severity,
                      rule=incident.rule, title=dict(incident.title), store=incident.store,
                      operator=incident.operator, opened_at=incident.opened_at,
                      resolved_at=incident.resolved_at,
                      age_days=(now - incident.opened_at).days if age else None)


def _section(team: str | None, opened: list[Incident], still_open: list[Incident],
             resolved: list[Incident], *, now: datetime) -> WeeklySection:
    """One team's counts and lists (``now``: when the ages are counted to)."""
    def named(found: list[Incident], *, age: bool = False) -> list[WeeklyLine]:
        return [_line(i, now, age=age) for i in sorted(found, key=_worst_first)
                [:WEEKLY_MAX_LINES]]

    return WeeklySection(team=team, opened=len(opened), still_open=len(still_open),
                         resolved=len(resolved), opened_list=named(opened),
                         open_list=named(still_open, age=True), resolved_list=named(resolved))


def worst_stores(still_open: Sequence[Incident]) -> list[WeeklyStore]:
    """Stores by their worst open incident's severity, then by how many are open."""
    by_store: dict[str, list[Incident]] = defaultdict(list)
    for incident in still_open:
        if incident.store:
            by_store[incident.store].append(incident)
    ranked = sorted(by_store.items(), key=lambda item: (
        -max(SEVERITY_RANK.get(i.severity, 0) for i in item[1]), -len(item[1]), item[0]))
    return [WeeklyStore(store=store, open=len(found),
                        worst=max((i.severity for i in found),
                                  key=lambda s: SEVERITY_RANK.get(s, 0)))
            for store, found in ranked[:WEEKLY_MAX_STORES]]


def team_of(incident: Incident, roster: Roster) -> str | None:
    """The team the incident was routed with (its ``team`` label, from the roster when it
    opened), else the roster's team of its operator now."""
    return incident.labels.get("team") or roster.team_of(incident.operator)


def page_link(public_url: str | None, route: Route, start: datetime,
              end: datetime) -> str | None:
    """The incident page listing what opened in the week, filtered as far as the page
    can filter the route's match (one value of severity, store, operator or rule)."""
    if not public_url:
        return None
    filters = {"since": start.date().isoformat(),
               "until": (end - timedelta(days=1)).date().isoformat()}
    filters.update({key: values[0] for key, values in sorted(route.match.items())
                    if key in _PAGE_FILTERS and len(values) == 1})
    return f"{public_url.rstrip('/')}/?{urlencode(filters)}"


def build(week: Period, index: int, route: Route, *, opened: Sequence[Incident],
          still_open: Sequence[Incident], resolved: Sequence[Incident], roster: Roster,
          now: datetime, public_url: str | None = None) -> WeeklyDigest:
    """The digest of route ``index`` for ``week`` from the store's three lists (opened
    in the week, live now and opened before its end, resolved in the week), keeping
    those the route matches."""
    start, end = week_bounds(week)
    mine = [[i for i in found if route.matches(labels_of(i))]
            for found in (opened, still_open, resolved)]
    by_team: dict[str | None, tuple[list[Incident], list[Incident], list[Incident]]] = {}
    for which, found in enumerate(mine):
        for incident in found:
            by_team.setdefault(team_of(incident, roster), ([], [], []))[which].append(
                incident)
    sections = [_section(team, *by_team[team], now=now)
                for team in sorted(by_team, key=lambda t: (t is None, t or ""))]
    return WeeklyDigest(week=week.text, route=index,
                        match={k: list(v) for k, v in route.match.items()},
                        start=start, end=end, at=now, opened=len(mine[0]),
                        still_open=len(mine[1]), resolved=len(mine[2]),
                        stores=worst_stores(mine[1]), sections=sections,
                        link=page_link(public_url, route, start, end),
                        closed=end <= now)


def digest_alert(digest: WeeklyDigest, route: Route, now: datetime) -> Alert:
    """The digest as a message for the route's channels; the renderer words its title
    and body in each channel's language (weekly.j2, ``weekly.*`` of strings.yaml). Its
    severity is ``info``: a summary never spends the budget critical alerts keep."""
    where = match_text(route)
    return Alert(kind=AlertKind.WEEKLY, rule="weekly-digest", severity="info",
                 audience="digest", period=digest.week,
                 title={"en": f"Weekly digest {digest.week}"
                              + ("" if digest.closed else " so far")
                              + f": route {digest.route}" + (f" ({where})" if where else ""),
                        "zh-CN": f"{digest.week} 周报" + ("" if digest.closed else "（截至目前）")
                                 + f"：路由 {digest.route}"
                                 + (f"（{where}）" if where else "")},
                 labels={"route": str(digest.route), "week": digest.week},
                 link=digest.link, at=now, weekly=digest)
