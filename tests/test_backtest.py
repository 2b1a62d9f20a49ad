"""Backtest: replay history through edited rules, compare with the record, notify nobody."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import func, select

from tests.conftest import ROOT
from tests.test_cli import env, watcher  # noqa: F401  (fixture)
from watcher.store import open_database
from watcher.store.schema import notifications


class TestBacktest:
    def test_a_stricter_threshold_shows_what_would_have_fired(self, env: Path):  # noqa: F811
        watcher("ingest", str(ROOT / "examples" / "snapshots.jsonl"))
        rules = env / "rules"
        shutil.copytree(ROOT / "rules", rules)
        compliance = rules / "default" / "compliance.yaml"
        compliance.write_text(compliance.read_text().replace(
            "account_health_score < 90", "account_health_score < 95"))
        db = open_database(f"sqlite:///{env / 'w.db'}")
        with db.engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(notifications)).scalar()
        code, out = watcher("rules", "backtest", "--from", "2026-07", "--to", "2026-11",
                            "--rules", str(rules), "--format", "json")
        assert code == 0
        report = json.loads(out)
        assert report["snapshots"] == 10
        health = next(r for r in report["rules"] if r["rule"] == "account-health-low")
        assert health["would_fire"] >= health["recorded"]
        assert {"rule": "account-health-low", "subject": "tts-uk-03"} in report[  # health 93
            "would_open_not_recorded"]
        with db.engine.connect() as conn:
            after = conn.execute(select(func.count()).select_from(notifications)).scalar()
        assert after == before  # nobody was notified
