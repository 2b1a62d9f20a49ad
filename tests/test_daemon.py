"""The daemon as a user runs it: a subprocess, a loopback webhook, signals and crashes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.daemon_harness import Daemon, Webhook, running

SECRET = "tok-9f8e7d6c5b4a"
EXAMPLES = (ROOT / "examples" / "snapshots.jsonl").read_bytes()


def contract_config(hook: Webhook) -> dict[str, object]:
    """The config of the escalations issue, as written, pointed at a loopback webhook."""
    return {
        "channels": {
            "compliance-hook": {"urls": [
                f"json://127.0.0.1:{hook.port}/compliance?token=${{HOOK_SECRET}}"]},
            "managers-mail": {"urls": [f"json://127.0.0.1:{hook.port}/managers"]},
        },
        "routes": [{"match": {"audience": "compliance"}, "channels": ["compliance-hook"]},
                   {"match": {"audience": "manager"}, "channels": ["managers-mail"]}],
    }


def wait_for_event(daemon: Daemon, incident_id: int, kind: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = httpx.get(f"{daemon.url}/v1/incidents/{incident_id}").json()
        if any(e["kind"] == kind for e in detail.get("events", [])):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} event on incident {incident_id}")


class TestDaemon:
    def test_examples_over_http_reach_the_right_channels_once(self, tmp_path: Path):
        hook = Webhook()
        try:
            with running(tmp_path, contract_config(hook), env={"HOOK_SECRET": SECRET}) as daemon:
                first = daemon.post(EXAMPLES)
                assert first.status_code == 200 and first.json()["accepted"] == 10
                opened = first.json()["incidents_opened"]
                received = hook.wait_for(opened + 1)  # + the dispute's resolution
                paths = [r["path"].split("?")[0] for r in received]
                # The PIP and amz-us-01's GMV and margin misses go to managers only.
                assert paths.count("/managers") == 3
                assert paths.count("/compliance") == len(paths) - 3
                again = daemon.post(EXAMPLES)
                assert again.json()["unchanged"] == 10
                assert again.json()["incidents_opened"] == 0
                assert daemon.terminate() == 0
            assert len(hook.received) == len(received)
            assert SECRET not in daemon.output()  # no token in any log line
        finally:
            hook.stop()

    def test_sigterm_exits_cleanly(self, tmp_path: Path):
        daemon = Daemon(tmp_path, {}).start()
        assert daemon.terminate() == 0
        assert "daemon_stopped" in daemon.output()

    def test_a_crash_between_commit_and_send_delivers_after_restart(self, tmp_path: Path):
        hook = Webhook(listening=False)  # down: every send fails
        config = {**contract_config(hook), "retry_base_seconds": 0.2, "retry_max_seconds": 0.5}
        secret = {"HOOK_SECRET": SECRET}
        daemon = Daemon(tmp_path, config, secret).start()
        response = daemon.post(json.dumps({"store": "s1", "platform": "amazon",
                                           "period": "2026-10", "metrics": {
                                               "penalty_count": 1}}).encode())
        assert response.json()["incidents_opened"] == 1
        wait_for_event(daemon, 1, "delivery_failed")  # committed, not delivered
        daemon.kill()  # kill -9
        hook.start()
        try:
            with running(tmp_path, config, env=secret) as restarted:
                [delivered] = hook.wait_for(1)
                assert delivered["path"].startswith("/compliance")
                incident = httpx.get(f"{restarted.url}/v1/incidents/1").json()
                kinds = [e["kind"] for e in incident["events"]]
                assert kinds[0] == "opened" and kinds[-1] == "notified"
                assert "delivery_failed" in kinds
                assert SECRET not in daemon.output() + restarted.output()
        finally:
            hook.stop()

    def test_the_drop_folder_takes_the_examples(self, tmp_path: Path):
        hook = Webhook()
        try:
            with running(tmp_path, contract_config(hook), "--with-examples",
                         env={"HOOK_SECRET": SECRET}) as daemon:
                hook.wait_for(6)
                listed = httpx.get(f"{daemon.url}/v1/incidents").json()
                assert any(i["rule"] == "pip-recommended" for i in listed)
                processed = list((tmp_path / "inbox" / "processed").iterdir())
                assert any(p.name.endswith("snapshots.jsonl") for p in processed)
        finally:
            hook.stop()
