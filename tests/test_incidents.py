"""Incident transitions are pure functions: no database, no clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from watcher import incidents as inc
from watcher.assessment.streaks import longest_within, run_containing
from watcher.errors import InvalidTransition
from watcher.period import Period

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def firing(value: float = 0.05, period: str = "2026-10") -> inc.Firing:
    return inc.Firing(rule="dispute-rate-high", rule_version="v1", subject_kind="store",
                      subject="s1", store="s1", platform="amazon", operator=None,
                      severity="high", audience="compliance", metric="dispute_rate",
                      value=value, threshold=0.03, period=period,
                      period_end=Period.parse(period).end, title={"en": "x", "zh-CN": "x"})


def live(status: inc.Status = inc.Status.OPEN, value: float = 0.05,
         period: str = "2026-10") -> inc.Incident:
    f = firing(value, period)
    return inc.Incident(id=7, fingerprint=f.fingerprint, status=status, opened_at=NOW,
                        updated_at=NOW, **f.model_dump())


class TestOnFiring:
    def test_no_live_incident_opens_one(self):
        assert isinstance(inc.on_firing(None, firing(), NOW), inc.Open)

    def test_a_live_incident_absorbs_a_changed_firing_as_an_event(self):
        decision = inc.on_firing(live(), firing(0.06), NOW)
        assert isinstance(decision, inc.Update) and decision.event.kind is inc.EventKind.FIRING
        assert decision.changes["value"] == 0.06

    def test_an_identical_firing_is_not_news(self):
        assert inc.on_firing(live(), firing(), NOW) is None

    def test_a_resolved_incident_does_not_absorb_a_new_breach(self):
        assert isinstance(inc.on_firing(live(inc.Status.RESOLVED), firing(), NOW), inc.Open)


class TestOnRecovery:
    def recovery(self, period: str, withdraw: bool = False) -> inc.Recovery:
        return inc.Recovery(fingerprint="f", period=period, period_end=Period.parse(period).end,
                            note="ok", withdraw=withdraw)

    def test_recovery_in_a_later_period_resolves(self):
        decision = inc.on_recovery(live(), self.recovery("2026-11"), NOW)
        assert isinstance(decision, inc.Update)
        assert decision.changes["status"] is inc.Status.RESOLVED

    def test_recovery_in_an_older_period_does_not(self):
        assert inc.on_recovery(live(), self.recovery("2026-09"), NOW) is None

    def test_a_withdrawal_resolves_whatever_the_period(self):
        assert inc.on_recovery(live(), self.recovery("2026-09", True), NOW) is not None


class TestManualTransitions:
    def test_open_to_acknowledged_to_resolved(self):
        ack = inc.acknowledge(live(), "ana", "on it", NOW)
        assert ack.changes["status"] is inc.Status.ACKNOWLEDGED and ack.event.actor == "ana"
        acked = ack.incident.model_copy(update=ack.changes)
        assert inc.resolve(acked, "ana", None, NOW).changes["resolved_by"] == "ana"

    def test_acknowledging_twice_is_refused(self):
        with pytest.raises(InvalidTransition, match="only an open incident"):
            inc.acknowledge(live(inc.Status.ACKNOWLEDGED), "ana", None, NOW)

    def test_resolving_a_resolved_incident_is_refused(self):
        with pytest.raises(InvalidTransition):
            inc.resolve(live(inc.Status.RESOLVED), "ana", None, NOW)


class TestStreaks:
    def test_run_containing_spans_both_directions(self):
        missed = {"2026-06": True, "2026-07": True, "2026-08": True, "2026-09": False}
        streak = run_containing(missed, Period.parse("2026-07"))
        assert streak is not None and streak.months == ("2026-06", "2026-07", "2026-08")

    def test_runs_cross_year_boundaries(self):
        missed = {"2025-12": True, "2026-01": True}
        streak = run_containing(missed, Period.parse("2026-01"))
        assert streak is not None and streak.months == ("2025-12", "2026-01")

    def test_longest_within_after_a_restatement(self):
        months = ("2026-01", "2026-02", "2026-03", "2026-04")
        missed = {"2026-01": True, "2026-02": False, "2026-03": True, "2026-04": True}
        remaining = longest_within(missed, months)
        assert remaining is not None and remaining.months == ("2026-03", "2026-04")

    def test_period_end_of_quarter(self):
        assert Period.parse("2026-Q4").end == date(2026, 12, 31)
