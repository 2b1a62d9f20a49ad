"""The real HTTP requests apprise builds for bots, captured with ``responses``.

WeCom and DingTalk answer HTTP 200 with ``errcode != 0`` when they refuse a
message; those replies must be failures with the service's own message.
"""

from __future__ import annotations

import json
from typing import Any

import responses

from tests.channels.conftest import health_alert, pip_alert
from watcher.channels.apprise_channel import AppriseChannel
from watcher.channels.base import ChannelDef

WECOM_KEY = "a1b2c3d4-0000-4444-8888-e5f6a7b8c9d0"
WECOM_API = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
DINGTALK_TOKEN = "d1n9t4lk0123456789abcdef"
DINGTALK_API = "https://oapi.dingtalk.com/robot/send"
FEISHU_TOKEN = "f31shu-0123-4567"
FEISHU_API = f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}/"


def channel(*urls: str, **fields: Any) -> AppriseChannel:
    return AppriseChannel(ChannelDef(name="bots", urls=urls, **fields), throttle_seconds=0)


def sent(call_index: int = 0) -> dict[str, Any]:
    body = responses.calls[call_index].request.body
    assert body is not None
    return dict(json.loads(body))


class TestWeComBot:
    @responses.activate
    def test_markdown_by_default_with_the_title_as_heading(self):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        report = channel(f"wecombot://{WECOM_KEY}", language="zh-CN").send(health_alert())
        assert report.ok, report.summary()
        payload = sent()
        assert payload["msgtype"] == "markdown"
        content = payload["markdown"]["content"]
        assert content.startswith("### 🔴 amz-us-01（amazon）：账号健康分 88 低于 90")
        assert '<font color="warning">**严重**</font>' in content
        assert "[查看事件](https://kpi.example.com/incidents/12)" in content

    @responses.activate
    def test_text_when_the_channel_asks_for_text(self):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        assert channel(f"wecombot://{WECOM_KEY}", format="text").send(health_alert()).ok
        payload = sent()
        assert payload["msgtype"] == "text"
        assert payload["text"]["content"].startswith("🔴 [CRITICAL] amz-us-01 (amazon)")

    @responses.activate
    def test_the_native_webhook_url_works_too(self):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        assert channel(WECOM_API).send(health_alert()).ok

    @responses.activate
    def test_long_chinese_text_is_cut_to_2048_bytes_on_a_character_boundary(self):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        long_title = "账号健康分低于阈值，请立即处理。" * 200  # 3200 characters, 9600 bytes
        alert = health_alert(title={"zh-CN": long_title, "en": "x"})
        assert channel(f"wecombot://{WECOM_KEY}", format="text",
                       language="zh-CN").send(alert).ok
        content = sent()["text"]["content"]
        encoded = content.encode("utf-8")
        assert 2000 < len(encoded) <= 2048
        assert encoded.decode("utf-8") == content  # whole characters only
        assert content.endswith("…（内容过长已截断，完整内容请查看事件）")

    @responses.activate
    def test_long_markdown_is_cut_to_4096_bytes(self):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        alert = pip_alert(title={"zh-CN": "未达标" * 2000, "en": "x"})
        assert channel(f"wecombot://{WECOM_KEY}", language="zh-CN").send(alert).ok
        assert 4000 < len(sent()["markdown"]["content"].encode("utf-8")) <= 4096

    @responses.activate
    def test_errcode_in_a_200_reply_is_a_failure_with_the_services_message(self):
        responses.post(WECOM_API, json={
            "errcode": 40058, "errmsg": "markdown.content exceed max length 4096. invalid "
                                        "Request Parameter, hint: [1730000000_1_abc]"})
        report = channel(f"wecombot://{WECOM_KEY}").send(health_alert())
        assert not report.ok and not report.retryable
        [outcome] = report.outcomes
        assert outcome.url == "wecombot://****"
        assert outcome.reason.startswith("WeCom Bot errcode 40058: markdown.content exceed max")

    @responses.activate
    def test_a_rate_limit_refusal_is_retryable(self):
        responses.post(WECOM_API, json={"errcode": 45009, "errmsg": "api freq out of limit"})
        report = channel(f"wecombot://{WECOM_KEY}").send(health_alert())
        assert not report.ok and report.retryable
        assert "45009: api freq out of limit" in report.summary()

    @responses.activate
    def test_an_http_error_is_a_retryable_failure(self):
        responses.post(WECOM_API, status=502)
        report = channel(f"wecombot://{WECOM_KEY}").send(health_alert())
        assert not report.ok and report.retryable
        assert report.outcomes[0].reason == "WeCom Bot answered HTTP 502"


class TestDingTalkBot:
    @responses.activate
    def test_markdown_with_a_preview_title_and_the_heading_in_the_text(self):
        responses.post(DINGTALK_API, json={"errcode": 0, "errmsg": "ok"})
        assert channel(f"dingtalk://{DINGTALK_TOKEN}").send(health_alert()).ok
        payload = sent()
        assert payload["msgtype"] == "markdown"
        assert payload["markdown"]["title"].startswith("[CRITICAL] amz-us-01 (amazon)")
        assert payload["markdown"]["text"].startswith("### 🔴 amz-us-01 (amazon)")
        assert responses.calls[0].request.url == f"{DINGTALK_API}?access_token={DINGTALK_TOKEN}"

    @responses.activate
    def test_text_says_the_title_once(self):
        responses.post(DINGTALK_API, json={"errcode": 0, "errmsg": "ok"})
        assert channel(f"dingtalk://{DINGTALK_TOKEN}", format="text").send(health_alert()).ok
        content = sent()["text"]["content"]
        assert content.startswith("🔴 [CRITICAL] amz-us-01 (amazon): account health")
        assert content.count("account health 88 is below 90") == 1

    @responses.activate
    def test_a_signed_robot_sends_timestamp_and_signature(self):
        responses.post(DINGTALK_API, json={"errcode": 0, "errmsg": "ok"})
        assert channel(f"dingtalk://s3cr3tsecret@{DINGTALK_TOKEN}").send(health_alert()).ok
        url = str(responses.calls[0].request.url)
        assert "timestamp=" in url and "sign=" in url

    @responses.activate
    def test_errcode_in_a_200_reply_is_a_failure_with_the_services_message(self):
        responses.post(DINGTALK_API, json={"errcode": 310000,
                                           "errmsg": "keywords not in content"})
        report = channel(f"dingtalk://{DINGTALK_TOKEN}").send(health_alert())
        assert not report.ok and not report.retryable
        assert report.outcomes[0].reason == "DingTalk errcode 310000: keywords not in content"
        assert DINGTALK_TOKEN not in report.summary()


class TestFeishu:
    """apprise 2.3.0 checks Feishu's ``code`` itself: pinned here, no subclass needed."""

    @responses.activate
    def test_a_card_with_the_subject_as_header(self):
        responses.post(FEISHU_API, json={"code": 0, "msg": "success", "data": {}})
        assert channel(f"feishu://{FEISHU_TOKEN}").send(health_alert()).ok
        card = sent()["card"]
        assert card["header"]["title"]["content"].startswith("[CRITICAL] amz-us-01")
        assert "**Store**: amz-us-01 (amazon)" in card["elements"][0]["text"]["content"]

    @responses.activate
    def test_a_non_zero_code_in_a_200_reply_is_a_failure_with_the_message(self):
        responses.post(FEISHU_API, json={"code": 9499, "msg": "Bad Request", "data": {}})
        report = channel(f"feishu://{FEISHU_TOKEN}").send(health_alert())
        assert not report.ok
        assert "code=9499 msg=Bad Request" in report.outcomes[0].reason


class TestSlack:
    @responses.activate
    def test_mrkdwn_body_with_the_subject_as_attachment_title(self):
        url = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cccccccccccccccccccccccc"
        responses.post(url, body="ok")
        alert = health_alert(store="amz-us-01 <&>")
        assert channel("slack://T0AAAAAAA/B0BBBBBBB/cccccccccccccccccccccccc").send(alert).ok
        payload = sent()
        assert payload["mrkdwn"] is True
        [attachment] = payload["attachments"]
        assert attachment["title"].startswith("[CRITICAL] amz-us-01 (amazon): account health")
        text = attachment["text"]
        assert "*CRITICAL* · opened · Incident #12" in text
        assert "• *Store:* amz-us-01 &lt;&amp;&gt; (amazon)" in text  # escaped once, by apprise
        assert "<https://kpi.example.com/incidents/12|Open the incident>" in text
        assert "account health 88 is below 90" not in text  # the title is not repeated

    @responses.activate
    def test_a_slack_error_reply_is_a_failure(self):
        url = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cccccccccccccccccccccccc"
        responses.post(url, status=404, body="no_service")
        report = channel(url).send(health_alert())
        assert not report.ok
        assert "cccccccccccccccccccccccc" not in report.summary()
