"""Silences hold notifications back, visibly, for their window only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.conftest import Clock, jsonl, snapshot
from tests.test_cli import env, watcher  # noqa: F401  (fixture)
from tests.test_pipeline import events, incidents
from watcher.pipeline import Pipeline
from watcher.silences import Silence, parse_matchers
from watcher.store import repository as repo
from watcher.store.schema import notifications
from watcher.validation import read_records


def silence(clock: Clock, hours: float = 2, **matchers: str) -> Silence:
    return Silence(matchers=matchers, starts_at=clock(),
                   ends_at=clock() + timedelta(hours=hours), created_by="ana",
                   comment="store migration", created_at=clock())


def queued(pipeline: Pipeline) -> int:
    with pipeline.db.engine.connect() as conn:
        return len(conn.execute(select(notifications.c.id)).all())


class TestSilence:
    def test_a_matching_silence_holds_the_notification_and_says_so(
            self, pipeline: Pipeline, clock: Clock):
        with pipeline.db.engine.begin() as conn:
            repo.add_silence(conn, silence(clock, store="amz-us-01"))
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1),
                                           snapshot(store="other", penalty_count=1))), "t")
        assert queued(pipeline) == 1
        silenced = next(i for i in incidents(pipeline) if i.store == "amz-us-01")
        assert events(pipeline, silenced.id) == ["opened", "silenced"]

    def test_an_expired_silence_holds_nothing(self, pipeline: Pipeline, clock: Clock):
        with pipeline.db.engine.begin() as conn:
            created = repo.add_silence(conn, silence(clock, audience="compliance"))
            repo.expire_silence(conn, created.id, clock())
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        assert queued(pipeline) == 1

    def test_silences_end_on_their_own(self, pipeline: Pipeline, clock: Clock):
        with pipeline.db.engine.begin() as conn:
            repo.add_silence(conn, silence(clock, hours=1, audience="compliance"))
        clock.advance(hours=2)
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        assert queued(pipeline) == 1

    def test_matchers_are_key_value(self):
        assert parse_matchers(["store=a", "label.team=eu"]) == {"store": "a",
                                                                "label.team": "eu"}


class TestSilencesCommand:
    def test_add_list_expire(self, env):  # noqa: F811
        code, out = watcher("silences", "add", "-m", "store=amz-us-01", "--by", "ana",
                            "--comment", "migration", "--duration", "1h")
        assert code == 0 and out.startswith("silence 1 until")
        code, out = watcher("silences", "list", "--format", "json")
        assert [s["matchers"] for s in __import__("json").loads(out)] == [{"store": "amz-us-01"}]
        assert watcher("silences", "expire", "1")[0] == 0
        assert watcher("silences", "list", "--format", "json")[1].strip() == "[]"

    def test_a_bad_matcher_is_refused(self, env):  # noqa: F811
        code, out = watcher("silences", "add", "-m", "shop=x", "--by", "a", "--comment", "c")
        assert code == 2 and "cannot match on 'shop'" in out
