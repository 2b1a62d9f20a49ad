"""Email end to end: apprise's mailto:// against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope

from tests.channels.conftest import free_port, health_alert, pip_alert
from watcher.channels.apprise_channel import AppriseChannel
from watcher.channels.base import ChannelDef

PASSWORD = "smtp-Pa55word-42"


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def authenticate(self, _server: Any, _session: Any, _envelope: Any, _mechanism: str,
                     data: Any) -> AuthResult:
        self.logins.append((data.login, data.password))
        return AuthResult(success=data.password == PASSWORD.encode(), handled=False)

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port,
                            authenticator=box.authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def mail_channel(port: int, language: str = "en") -> AppriseChannel:
    defn = ChannelDef.from_config("managers-mail", {
        "urls": [f"mailto://kpi-watch:${{SMTP_PASSWORD}}@example.com?smtp=127.0.0.1&port={port}"
                 "&mode=insecure&from=kpi-watch@example.com&to=managers@example.com"],
        "language": language}, env={"SMTP_PASSWORD": PASSWORD})
    return AppriseChannel(defn, throttle_seconds=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
class TestEmailDelivery:
    def test_an_alert_arrives_with_subject_html_and_a_text_alternative(self, smtp):
        box, port = smtp
        report = mail_channel(port).send(health_alert())
        assert report.ok, report.summary()
        assert box.logins == [(b"kpi-watch", PASSWORD.encode())]
        assert box.envelopes[0].rcpt_tos == ["managers@example.com"]
        message = box.message()
        assert message["Subject"] == (
            "[CRITICAL] amz-us-01 (amazon): account health 88 is below 90 in 2026-10")
        assert message.get_content_type() == "multipart/alternative"
        html = message.get_body(("html",))
        text = message.get_body(("plain",))
        assert html is not None and text is not None
        html_body, text_body = html.get_content(), text.get_content()
        assert "<li><b>Store</b>: amz-us-01 (amazon)</li>" in html_body
        assert '<a href="https://kpi.example.com/incidents/12">' in html_body
        for expected in ("account health 88 is below 90", "Store: amz-us-01 (amazon)",
                         "Value: 88 (threshold 90)", "https://kpi.example.com/incidents/12"):
            assert expected in text_body, expected
        assert "<" not in text_body

    def test_a_pip_email_in_chinese_lists_the_evidence(self, smtp):
        box, port = smtp
        assert mail_channel(port, "zh-CN").send(pip_alert()).ok
        message = box.message()
        assert message["Subject"].startswith("[高] li.wei 连续 3 个月未达标")
        text = message.get_body(("plain",))
        assert text is not None
        body = text.get_content()
        assert "逐月未达标情况" in body and "2026-08" in body and "-30,000, -20.0%" in body

    def test_a_refused_login_is_a_failed_report_without_the_password(self, smtp):
        box, port = smtp
        defn = ChannelDef(name="mail", urls=(
            f"mailto://kpi-watch:wrong-Secret9@example.com?smtp=127.0.0.1&port={port}"
            "&mode=insecure&from=kpi-watch@example.com&to=managers@example.com",))
        report = AppriseChannel(defn, throttle_seconds=0).send(health_alert())
        assert not report.ok and not box.envelopes
        assert "wrong-Secret9" not in report.summary() and report.outcomes[0].reason
