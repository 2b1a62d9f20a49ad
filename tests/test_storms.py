"""Storm control: a channel's send rate is shared by every replica, and what waits beyond
it is folded into digests (critical first) instead of queueing one by one.

The chat services are the real apprise plugins; their HTTP requests are captured with
``responses``, so what is counted is what WeCom would have received. Time is an
injected clock: a minute passes in a moment.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from sqlalchemy import select

from tests.channels.test_plugins import WECOM_API, WECOM_KEY
from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import events
from watcher.alerts import Alert, AlertKind
from watcher.channels.apprise_channel import AppriseChannel
from watcher.channels.base import ChannelDef
from watcher.channels.memory import MemoryChannel
from watcher.config import load_settings
from watcher.dispatcher import Dispatcher
from watcher.observability import REGISTRY
from watcher.pipeline import Pipeline
from watcher.store import repository as repo
from watcher.store.schema import notifications
from watcher.validation import read_records
from watcher.web.views import timeline

PUBLIC_URL = "https://kpi.example.com"


def storm_settings(pipeline: Pipeline, **channel: Any) -> None:
    """Compliance alerts to one WeCom group bot (its default rate: 20/min), in Chinese."""
    pipeline.settings = load_settings(
        env={}, rules=str(pipeline.settings.rules), public_url=PUBLIC_URL,
        channels={"wecom": {"urls": [f"wecombot://{WECOM_KEY}"], "language": "zh-CN",
                            **channel}},
        routes=[{"match": {"audience": "compliance"}, "channels": ["wecom"]}])


def wecom(pipeline: Pipeline) -> AppriseChannel:
    defn = ChannelDef.from_config("wecom", pipeline.settings.channels["wecom"], env={})
    return AppriseChannel(defn, throttle_seconds=0)  # the rate is ours to keep, not apprise's


def sender(pipeline: Pipeline, channels: dict[str, Any], clock: Clock) -> Dispatcher:
    return Dispatcher(pipeline.db, channels, pipeline.settings, clock=clock,
                      jitter=lambda: 1.0)


def drain(dispatcher: Dispatcher) -> None:
    while dispatcher.run_once():
        pass


def messages() -> list[str]:
    """The markdown each captured WeCom request carried."""
    return [json.loads(call.request.body)["markdown"]["content"] for call in responses.calls]


def alerts_in(message: str) -> int:
    """How many alerts a WeCom message stands for: a digest says it in its title."""
    folded = re.search(r"同时触发 (\d+) 条告警", message)
    return int(folded.group(1)) if folded else 1


def breaches(first: int, count: int) -> bytes:
    return jsonl(*[snapshot(store=f"s{n:03d}", operator=None, penalty_count=1)
                   for n in range(first, first + count)])


class TestStorm:
    @responses.activate
    @pytest.mark.parametrize(("batch", "every"), [(500, 0), (50, 3), (10, 1)],
                             ids=["all-at-once", "50-every-3s", "10-a-second"])
    def test_500_breaching_stores_reach_a_20_per_minute_bot_as_at_most_20_messages(
            self, pipeline: Pipeline, clock: Clock, batch: int, every: int):
        """The issue's figure: a platform change puts 500 stores in breach (at once, or
        arriving over most of a minute); the WeCom bot (20/min) gets at most 20
        messages in the first minute, and those account for all 500."""
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        storm_settings(pipeline)
        dispatcher = sender(pipeline, {"wecom": wecom(pipeline)}, clock)
        start = clock.now
        for first in range(0, 500, batch):
            pipeline.ingest(read_records(breaches(first, batch)), "t")
            drain(dispatcher)
            clock.advance(seconds=every)
        while clock.now - start < timedelta(seconds=59):
            drain(dispatcher)
            clock.advance(seconds=1)
        sent = messages()
        accounted = sum(alerts_in(m) for m in sent)
        print(f"storm ({batch} every {every} s): 500 breaches -> {len(sent)} WeCom messages "
              f"in the first minute, accounting for {accounted}")
        assert len(sent) <= 20
        assert accounted == 500
        assert all(len(m.encode()) <= 4096 for m in sent)  # WeCom's markdown limit
        with pipeline.db.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(notifications))]
        digests = {r["id"]: r for r in rows if r["incident_id"] is None}
        folded = [r for r in rows if r["status"] == "folded"]
        assert all(d["status"] == "sent" for d in digests.values())
        assert all(r["carried_by"] in digests for r in folded)
        assert len(folded) + sum(1 for r in rows if r["incident_id"] is not None
                                 and r["status"] == "sent") == 500

    @responses.activate
    def test_every_folded_incident_names_the_digest_that_carried_it(
            self, pipeline: Pipeline, clock: Clock):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        storm_settings(pipeline)
        before = {name: REGISTRY.get_sample_value(name, {"channel": "wecom"}) or 0.0
                  for name in ("watcher_notifications_folded_total", "watcher_digests_total")}
        pipeline.ingest(read_records(breaches(0, 30)), "t")
        drain(sender(pipeline, {"wecom": wecom(pipeline)}, clock))
        [message] = messages()
        for name, more in (("watcher_notifications_folded_total", 30),
                           ("watcher_digests_total", 1)):  # /metrics, per channel
            assert REGISTRY.get_sample_value(name, {"channel": "wecom"}) == before[name] + more
        assert alerts_in(message) == 30
        assert f"{PUBLIC_URL}/?rule=penalty-received" in message  # the filtered page
        assert "s000" in message and "另有" in message  # the worst by name, then the rest
        with pipeline.db.engine.connect() as conn:
            [digest_id] = [r.id for r in conn.execute(
                select(notifications.c.id).where(notifications.c.incident_id.is_(None)))]
            for incident_id in range(1, 31):
                timeline = repo.incident_events_of(conn, incident_id)
                assert [e["kind"] for e in timeline] == ["opened", "folded", "notified"]
                assert timeline[1]["data"] == {"channel": "wecom", "digest": digest_id}
                assert f"#{digest_id}" in timeline[1]["note"]
                assert timeline[2]["data"]["digest"] == digest_id

    @responses.activate
    def test_a_few_alerts_within_the_rate_go_out_one_by_one(
            self, pipeline: Pipeline, clock: Clock):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        storm_settings(pipeline)
        pipeline.ingest(read_records(breaches(0, 3)), "t")
        drain(sender(pipeline, {"wecom": wecom(pipeline)}, clock))
        assert [alerts_in(m) for m in messages()] == [1, 1, 1]
        assert all("同时触发" not in m for m in messages())
        assert events(pipeline, 1) == ["opened", "notified"]

    @responses.activate
    def test_the_digest_is_in_the_channels_language(self, pipeline: Pipeline, clock: Clock):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        storm_settings(pipeline, language="en")
        pipeline.ingest(read_records(breaches(0, 25)), "t")
        drain(sender(pipeline, {"wecom": wecom(pipeline)}, clock))
        [message] = messages()
        assert "25 alerts at once" in message and "Worst first" in message

    @responses.activate
    def test_a_digest_too_long_for_the_service_names_fewer_stores_instead_of_being_cut(
            self, pipeline: Pipeline, clock: Clock):
        """WeCom text messages hold 2048 bytes: ten long store names do not fit."""
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        storm_settings(pipeline, format="text")
        pipeline.ingest(read_records(jsonl(*[
            snapshot(store=f"{'很长的店铺名称' * 8}-{n}", operator=None, penalty_count=1)
            for n in range(25)])), "t")
        drain(sender(pipeline, {"wecom": wecom(pipeline)}, clock))
        [call] = responses.calls
        text = json.loads(call.request.body)["text"]["content"]
        assert len(text.encode()) <= 2048
        assert "截断" not in text  # not truncated: it names fewer stores and says so
        named = text.count("很长的店铺名称" * 8)
        assert 0 < named < 10 and f"另有 {25 - named} 条" in text


def queue(pipeline: Pipeline, clock: Clock, severity: str, count: int, channel: str) -> None:
    """``count`` notifications of ``severity`` due now on ``channel``."""
    rows = [repo.notification_row(None, None, channel, Alert(
        kind=AlertKind.OPENED, rule=f"{severity}-rule", severity=severity,
        audience="compliance", title={"en": f"{severity} alert"}, store=f"{severity}-{n}",
        at=clock.now), clock.now) for n in range(count)]
    with pipeline.db.engine.begin() as conn:
        repo.insert_notifications(conn, rows)


def limited(name: str, rate: str) -> MemoryChannel:
    return MemoryChannel(ChannelDef(name=name, kind="memory", rate=rate))


class TestCritical:
    def test_a_critical_alert_goes_before_a_backlog_and_is_never_folded_into_it(
            self, pipeline: Pipeline, clock: Clock):
        channel = limited("bot", "20/min")
        queue(pipeline, clock, "medium", 40, "bot")
        queue(pipeline, clock, "critical", 1, "bot")
        sender(pipeline, {"bot": channel}, clock).run_once()
        first, second = channel.sent
        assert (first.severity, first.kind) == ("critical", AlertKind.OPENED)
        assert second.kind is AlertKind.DIGEST and second.digest is not None
        assert second.digest.total == 40

    def test_critical_alerts_have_a_budget_the_others_cannot_spend(
            self, pipeline: Pipeline, clock: Clock):
        """Medium alerts arriving one at a time use at most three quarters of the rate;
        a critical one arriving after them goes at once, within the same minute."""
        channel = limited("bot", "20/min")
        dispatcher = sender(pipeline, {"bot": channel}, clock)
        for _ in range(16):
            queue(pipeline, clock, "medium", 1, "bot")
            dispatcher.run_once()
            clock.advance(seconds=1)
        medium = len(channel.sent)
        assert medium <= 15  # three quarters of the rate; the rest waits
        with pipeline.db.engine.connect() as conn:
            assert repo.outbox_backlog(conn)[0] > 0
        queue(pipeline, clock, "critical", 1, "bot")
        dispatcher.run_once()
        assert channel.sent[-1].severity == "critical" and len(channel.sent) == medium + 1


class TestSharedRate:
    @pytest.mark.parametrize("replicas", [1, 2])
    def test_replicas_spend_one_budget(self, pipeline: Pipeline, clock: Clock, replicas: int):
        """Replicas on one database send no more together than one may (the store counts
        what was sent and claimed in the window), and nothing is left behind."""
        channels = [limited("bot", "4/min") for _ in range(replicas)]
        dispatchers = [sender(pipeline, {"bot": c}, clock) for c in channels]
        for step in range(90):  # two new alerts every 2 s for a minute, then two quiet
            if step < 30:
                queue(pipeline, clock, "high", 2, "bot")
            dispatchers[step % replicas].run_once()
            dispatchers[(step + 1) % replicas].run_once()
            clock.advance(seconds=2)
        sent = [alert for c in channels for alert in c.sent]
        assert sum(a.digest.total if a.digest else 1 for a in sent) == 60
        with pipeline.db.engine.connect() as conn:
            times = sorted(r[0] for r in conn.execute(select(notifications.c.sent_at).where(
                notifications.c.status == "sent")))
        assert len(times) == len(sent)
        for start in times:  # any 60 s: at most 4 messages
            assert sum(1 for t in times if start <= t < start + timedelta(seconds=60)) <= 4
        if replicas == 2:
            assert all(c.sent for c in channels)  # both took part


class TestTimelinePage:
    def test_the_page_says_which_digest_carried_the_incident(self):
        at = datetime(2026, 11, 1, tzinfo=UTC)
        folded, notified = timeline([
            {"at": at, "kind": "folded", "actor": "watcher", "data": {
                "channel": "wecom", "digest": 7},
             "note": "carried by digest notification #7 on 'wecom' (30 alerts in one message)"},
            {"at": at, "kind": "notified", "actor": "watcher", "note": None, "data": {
                "channel": "wecom", "attempt": 1, "outcomes": [], "digest": 7}}], "zh-CN")
        assert folded.label == "已合并为汇总消息" and "#7" in (folded.note or "")
        assert "由渠道 wecom 的汇总消息 #7 送达" in notified.details
