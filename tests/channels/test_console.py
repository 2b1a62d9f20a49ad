"""The console channel: the quick start's alerts, readable on a terminal."""

from __future__ import annotations

import io

from tests.channels.conftest import health_alert, pip_alert
from watcher.channels.base import ChannelDef
from watcher.channels.console import ConsoleChannel


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def console(language: str = "en", **kwargs: object) -> ConsoleChannel:
    return ConsoleChannel(ChannelDef(name="console", kind="console", language=language),
                          **kwargs)  # type: ignore[arg-type]


class TestConsoleChannel:
    def test_prints_a_block_to_stdout(self, capsys):
        report = console().send(health_alert())
        assert report.ok and report.outcomes[0].url == "console://stdout"
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0].startswith("━━ 🔴 CRITICAL · opened · Incident #12 ━")
        assert lines[1] == "  amz-us-01 (amazon): account health 88 is below 90 in 2026-10"
        assert "  Store      amz-us-01 (amazon)" in lines
        assert "  Value      88  (threshold 90)" in lines
        assert "  Link       https://kpi.example.com/incidents/12" in lines
        assert out.endswith("\n\n") and "\x1b[" not in out

    def test_chinese_labels_line_up_with_the_values(self, capsys):
        console("zh-CN").send(health_alert())
        lines = capsys.readouterr().out.splitlines()
        assert "  店铺       amz-us-01 (amazon)" in lines  # 店铺 is 4 columns wide
        assert "  当前值     88  (阈值 90)" in lines

    def test_a_pip_alert_shows_the_evidence_month_by_month(self, capsys):
        console().send(pip_alert())
        out = capsys.readouterr().out
        assert "Missed monthly targets, month by month:" in out
        assert "GMV: 120,000 vs 150,000  (-30,000, -20.0%)  amz-us-01" in out

    def test_colour_on_a_terminal_only(self, monkeypatch):
        monkeypatch.delenv("NO_COLOR", raising=False)
        tty = Tty()
        console(stream=tty).send(health_alert())
        assert "\x1b[1;31m━━ 🔴 CRITICAL" in tty.getvalue()

    def test_no_colour_when_no_color_is_set(self, monkeypatch):
        monkeypatch.setenv("NO_COLOR", "1")
        tty = Tty()
        console(stream=tty).send(health_alert())
        assert "\x1b[" not in tty.getvalue()

    def test_a_closed_stdout_is_a_failed_report_not_an_exception(self):
        closed = io.StringIO()
        closed.close()
        report = console(stream=closed).send(health_alert())
        assert not report.ok and "ValueError" in report.summary()
