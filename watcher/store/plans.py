"""PIP plans and monthly-report deliveries: reads and writes on one connection.

A plan is stored whole (its JSON) beside the columns queries need: the timer
loop reads the active ones, the pipeline asks which live PIP incidents have
one, the monthly report lists the operators' plans. The caller owns the
transaction, so a plan, its timeline event and its notifications commit together.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from watcher.assessment.pip import ACTIVE, Plan
from watcher.store.database import claim_once
from watcher.store.schema import pip_plans, report_deliveries


def get_plan(conn: Connection, incident_id: int, *, lock: bool = False) -> Plan | None:
    query = select(pip_plans.c.plan).where(pip_plans.c.incident_id == incident_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return Plan.model_validate(row[0]) if row else None


def save_plan(conn: Connection, plan: Plan, now: datetime, *, new: bool) -> None:
    values = {"operator": plan.operator, "status": plan.status.value, "ends_on": plan.ends_on,
              "plan": plan.model_dump(mode="json"), "updated_at": now}
    if new:
        conn.execute(insert(pip_plans).values(incident_id=plan.incident_id, **values))
    else:
        conn.execute(update(pip_plans).where(pip_plans.c.incident_id == plan.incident_id)
                     .values(**values))


def active_plans(conn: Connection) -> list[Plan]:
    rows = conn.execute(select(pip_plans.c.plan).where(
        pip_plans.c.status.in_([s.value for s in ACTIVE])).order_by(pip_plans.c.incident_id))
    return [Plan.model_validate(r[0]) for r in rows]


def plans_of(conn: Connection, incident_ids: Iterable[int]) -> dict[int, Plan]:
    ids = sorted(set(incident_ids))
    if not ids:
        return {}
    rows = conn.execute(select(pip_plans.c.plan).where(pip_plans.c.incident_id.in_(ids)))
    plans = [Plan.model_validate(r[0]) for r in rows]
    return {p.incident_id: p for p in plans}


def planned_incidents(conn: Connection, incident_ids: Iterable[int]) -> frozenset[int]:
    """Which of these incidents have a plan (started, whatever became of it)."""
    ids = sorted(set(incident_ids))
    if not ids:
        return frozenset()
    rows = conn.execute(select(pip_plans.c.incident_id).where(
        pip_plans.c.incident_id.in_(ids)))
    return frozenset(int(r[0]) for r in rows)


def reported(conn: Connection, period: str) -> set[str]:
    """The managers whose report for ``period`` went out."""
    rows = conn.execute(select(report_deliveries.c.manager).where(
        report_deliveries.c.period == period))
    return {str(r[0]) for r in rows}


def claim_report(conn: Connection, manager: str, period: str, now: datetime) -> bool:
    """Record that ``manager``'s report for ``period`` goes out; False when it already
    did (here or in another replica). Commit it with the notifications it sends."""
    return claim_once(conn, report_deliveries,
                      {"manager": manager, "period": period, "sent_at": now})
