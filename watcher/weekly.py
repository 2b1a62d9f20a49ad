"""The weekly digest's edge: read a route's week from the store, and send it once.

Each route with ``digest: weekly`` gets, on its ``day`` at its ``hour`` (UTC;
Monday 09:00 by default), the digest of the ISO week just closed on its own
channels (watcher/weekly_digest.py says what it holds). Sent once per route and
week: the delivery is recorded in the store (``digest_deliveries``) in the
transaction that enqueues its notifications, so a restart or a second replica
never sends it again, and a daemon that was down at the hour sends it when it
is back (until the next week's is due: then that one goes).

A route is known by its match and channels (``route_key``), not by its place in
the list: moving routes around does not send a week again; changing what a
route matches or where it sends makes it a new route, whose digest goes out.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import structlog
from sqlalchemy import Connection

from watcher.alerts import WeeklyDigest
from watcher.assessment.roster import Roster
from watcher.config import Route, Settings
from watcher.incidents import Incident, Status
from watcher.period import Period
from watcher.runtime import Runtime
from watcher.store import digests
from watcher.store import repository as repo
from watcher.weekly_digest import build, digest_alert, due_week, week_bounds

log = structlog.get_logger(__name__)

READ_MAX = 100_000  # incidents per list read for one digest (a week of a fleet fits)
Lists = tuple[list[Incident], list[Incident], list[Incident]]  # opened, still open, resolved


def _identity(route: Route) -> str:
    return json.dumps({"match": {k: list(v) for k, v in sorted(route.match.items())},
                       "channels": list(route.channels)}, sort_keys=True)


def route_key(settings: Settings, index: int) -> str:
    """Route ``index``'s identity for its deliveries: what it matches and where it sends
    (and, for twins that match and send alike, which of them it is)."""
    identity = _identity(settings.routes[index])
    twin = sum(_identity(r) == identity for r in settings.routes[:index])
    return hashlib.sha256(f"{identity}#{twin}".encode()).hexdigest()[:32]


def week_lists(conn: Connection, week: Period) -> Lists:
    """The week's incidents by the filters ``GET /v1/incidents`` takes: opened in it
    (``since``, ``until``), still open now and opened before its end (``status`` open or
    acknowledged, ``until``), resolved in it (``resolved_since``, ``resolved_until``)."""
    start, end = week_bounds(week)
    opened = repo.list_incidents(conn, since=start, until=end, limit=READ_MAX)
    still_open = [i for status in (Status.OPEN, Status.ACKNOWLEDGED)
                  for i in repo.list_incidents(conn, status=status.value, until=end,
                                               limit=READ_MAX)]
    resolved = repo.list_incidents(conn, status=Status.RESOLVED.value, resolved_since=start,
                                   resolved_until=end, limit=READ_MAX)
    return opened, still_open, resolved


def digest_for(conn: Connection, settings: Settings, roster: Roster, index: int,
               week: Period, now: datetime, lists: Lists | None = None) -> WeeklyDigest:
    """Route ``index``'s digest of ``week`` as of ``now`` (the CLI previews it so);
    ``lists``: the week's incidents already read (``week_lists``) for another route."""
    opened, still_open, resolved = lists if lists is not None else week_lists(conn, week)
    return build(week, index, settings.routes[index], opened=opened, still_open=still_open,
                 resolved=resolved, roster=roster, now=now, public_url=settings.public_url)


def send_due(runtime: Runtime, now: datetime) -> int:
    """Send each digest route's digest of the week just closed, once; the number sent."""
    settings = runtime.settings
    due = [(index, route, due_week(now, route.digest.day, route.digest.hour))
           for index, route in enumerate(settings.routes) if route.digest is not None]
    if not due:
        return 0
    with runtime.db.engine.connect() as conn:
        done = {week.text: digests.digested(conn, week.text)
                for week in {w for _i, _r, w in due}}
    sent = 0
    read: dict[str, Lists] = {}  # each week's incidents, read once for all its routes
    for index, route, week in due:
        key = route_key(settings, index)
        if key in done[week.text]:
            continue
        with runtime.db.engine.begin() as conn:
            if not digests.claim_digest(conn, key, week.text, now):
                continue
            if week.text not in read:
                read[week.text] = week_lists(conn, week)
            digest = digest_for(conn, settings, runtime.pipeline.roster, index, week, now,
                                read[week.text])
            alert = digest_alert(digest, route, now)
            repo.insert_notifications(conn, [repo.notification_row(None, None, channel, alert,
                                                                   now)
                                             for channel in route.channels])
        log.info("weekly_digest_sent", route=index, week=week.text, channels=route.channels,
                 opened=digest.opened, still_open=digest.still_open,
                 resolved=digest.resolved)
        sent += 1
    return sent
