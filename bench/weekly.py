"""``python -m bench.weekly [--incidents N] [--teams T] [--postgres] [--json]``: a route's
weekly digest at fleet size.

A store holding N incidents of one ISO week (2026-W47) over 5,000 stores and T roster
teams (a third resolved within the week, a tenth opened the week before and still
open), then: the store's three reads and the pure build of one route's digest
(``watcher.weekly.digest_for``, what the timer does inside its claim), and fitting it
to a WeCom bot in Chinese (markdown, 4096 bytes: ``AppriseChannel``'s loop of renders,
each naming fewer lines). Prints seconds and the message's size. Read the figures on
this small shared machine as an order of magnitude (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.pages import database
from watcher.assessment.roster import Roster
from watcher.channels.limits import fits, limit_for
from watcher.channels.render import Renderer
from watcher.config import load_settings
from watcher.incidents import Incident, Status
from watcher.period import Period
from watcher.store import open_database
from watcher.store import repository as repo
from watcher.weekly import digest_for
from watcher.weekly_digest import digest_alert

WEEK = Period.parse("2026-W47")
START = datetime(2026, 11, 16, tzinfo=UTC)
SENT = datetime(2026, 11, 23, 9, tzinfo=UTC)
SEVERITIES = ("critical", "high", "high", "medium", "medium", "low")


def incidents(count: int, teams: int) -> list[Incident]:
    made = []
    for n in range(count):
        before = n % 10 == 0  # opened the week before, still open
        opened = (START - timedelta(days=3) if before else
                  START + timedelta(minutes=(n * 37) % (7 * 1440)))
        resolved = None if before or n % 3 else opened + timedelta(hours=20)
        resolved = resolved if resolved is None or resolved < SENT else None
        store = f"store-{n % 5000:04d}"
        made.append(Incident(
            id=0, fingerprint=f"dispute-rate-high|{store}|{n}", rule="dispute-rate-high",
            rule_version="1", subject_kind="store", subject=store, store=store,
            platform="amazon", operator=f"op{n % 700}", metric="dispute_rate", value=0.05,
            threshold=0.03, period="2026-11", period_end=None, evidence=[],
            status=Status.RESOLVED if resolved else Status.OPEN,
            severity=SEVERITIES[n % len(SEVERITIES)], audience="compliance",
            title={"en": f"{store} (amazon): dispute rate 5.00% above 3.00%",
                   "zh-CN": f"{store}（amazon）：纠纷率 5.00% 高于 3.00%"},
            labels={"team": f"团队{n % teams:02d}"}, opened_at=opened,
            updated_at=resolved or opened, resolved_at=resolved))
    return made


def run(count: int, teams: int, postgres: bool) -> dict[str, Any]:
    with database(postgres) as url:
        db = open_database(url, auto_upgrade=True)
        with db.engine.begin() as conn:
            repo.insert_incidents(conn, incidents(count, teams))
        settings = load_settings(env={}, database_url=url, channels={
            "bot": {"urls": ["wecombot://k"], "language": "zh-CN"}}, routes=[
            {"match": {"audience": "compliance"}, "channels": ["bot"], "digest": "weekly"}])
        started = time.perf_counter()
        with db.engine.connect() as conn:
            digest = digest_for(conn, settings, Roster(), 0, WEEK, SENT)
        built = time.perf_counter() - started
        renderer, limit = Renderer(), limit_for("wecombot", "markdown")
        alert = digest_alert(digest, settings.routes[0], SENT)
        started = time.perf_counter()
        named, renders = 10, 1
        body = renderer.render(alert, "markdown", "zh-CN", service="wecombot").body
        while named and not fits(body, limit):
            named, renders = named - 1, renders + 1
            body = renderer.render(alert, "markdown", "zh-CN", service="wecombot",
                                   digest_items=named).body
        fitted = time.perf_counter() - started
        db.dispose()
    return {"database": "postgresql" if postgres else "sqlite", "incidents": count,
            "teams": teams, "opened": digest.opened, "still_open": digest.still_open,
            "resolved": digest.resolved, "read_and_build_s": round(built, 3),
            "fit_s": round(fitted, 4), "renders": renders, "named_per_list": named,
            "bytes": len(body.encode()), "fits": fits(body, limit)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=8)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.incidents, args.teams, args.postgres)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
