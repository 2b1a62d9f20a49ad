"""Templates: what a notification says, in English and Chinese, per format."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.channels.conftest import health_alert, pip_alert
from watcher.alerts import AlertKind
from watcher.channels.render import DEFAULT_TEMPLATES, Renderer, display_width, pad
from watcher.errors import ConfigError

FORMATS = ("text", "slack", "markdown", "html", "console")


class TestRenderer:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_every_format_says_what_where_who_how_much_and_where_to_look(self, renderer, fmt):
        body = renderer.render(health_alert(), fmt, "en").body
        for expected in ("account health 88 is below 90", "CRITICAL", "amz-us-01", "amazon",
                         "li.wei", "Account health score", "88", "90", "2026-10", "#12",
                         "https://kpi.example.com/incidents/12"):
            assert expected in body, (fmt, expected)

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_chinese_channels_get_chinese_words(self, renderer, fmt):
        body = renderer.render(health_alert(), fmt, "zh-CN").body
        for expected in ("账号健康分 88 低于 90", "严重", "店铺", "运营", "阈值", "事件 #12"):
            assert expected in body, (fmt, expected)

    def test_the_subject_carries_severity_and_title(self, renderer):
        assert renderer.render(health_alert(), "html", "en").subject == (
            "[CRITICAL] amz-us-01 (amazon): account health 88 is below 90 in 2026-10")
        assert renderer.render(health_alert(), "html", "zh-CN").subject.startswith("[严重] ")

    def test_a_resolution_says_so(self, renderer):
        rendered = renderer.render(health_alert(kind=AlertKind.RESOLVED), "text", "en")
        assert rendered.subject.startswith("[CRITICAL] Resolved: ")
        assert "✅" in rendered.body

    def test_no_link_line_without_a_link(self, renderer):
        for fmt in FORMATS:
            body = renderer.render(health_alert(link=None), fmt, "en").body
            assert "Open the incident" not in body and "Link" not in body

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_a_pip_alert_lists_months_indicators_and_gaps(self, renderer, fmt):
        body = renderer.render(pip_alert(), fmt, "en").body
        for expected in ("2026-08", "2026-09", "2026-10", "GMV", "120,000", "150,000",
                         "-30,000, -20.0%", "Conversion rate", "2.10%", "3.00%", "-0.90 pp"):
            assert expected in body, (fmt, expected)
        assert body.index("2026-08") < body.index("2026-09") < body.rindex("2026-10")

    def test_a_pip_alert_in_chinese(self, renderer):
        body = renderer.render(pip_alert(), "markdown", "zh-CN").body
        assert "逐月未达标情况" in body and "销售额" in body and "-0.90 个百分点" in body

    def test_evidence_is_for_pip_alerts_only(self, renderer):
        body = renderer.render(health_alert(evidence=pip_alert().evidence), "text", "en").body
        assert "month by month" not in body

    def test_heading_false_leaves_the_title_to_the_service(self, renderer):
        body = renderer.render(health_alert(), "slack", "en", heading=False).body
        assert "account health 88 is below 90" not in body

    def test_html_escapes_values(self, renderer):
        body = renderer.render(health_alert(store="<b>x&y</b>"), "html", "en").body
        assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in body and "<b>x&y</b>" not in body

    def test_wecom_markdown_colours_the_severity(self, renderer):
        body = renderer.render(health_alert(), "markdown", "en", service="wecombot").body
        assert '<font color="warning">**CRITICAL**</font>' in body
        assert "<font" not in renderer.render(health_alert(), "markdown", "en",
                                              service="dingtalk").body

    def test_templates_come_from_the_folder_given(self, tmp_path: Path):
        folder = tmp_path / "templates"
        shutil.copytree(DEFAULT_TEMPLATES, folder)
        (folder / "text.j2").write_text("custom {{ store }} {{ t.store }}", encoding="utf-8")
        assert Renderer(folder).render(health_alert(), "text", "en").body == (
            "custom amz-us-01 Store")

    def test_a_missing_folder_is_a_config_error(self, tmp_path: Path):
        with pytest.raises(ConfigError, match="does not exist"):
            Renderer(tmp_path / "nowhere")

    def test_a_template_syntax_error_names_file_and_line(self, tmp_path: Path):
        folder = tmp_path / "templates"
        shutil.copytree(DEFAULT_TEMPLATES, folder)
        (folder / "slack.j2").write_text("ok\n{% if %}", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            Renderer(folder)
        assert caught.value.file == str(folder / "slack.j2") and caught.value.line == 2

    def test_a_template_that_fails_at_render_time_falls_back_to_plain_text(self, tmp_path):
        folder = tmp_path / "templates"
        shutil.copytree(DEFAULT_TEMPLATES, folder)
        (folder / "text.j2").write_text("{{ no_such_variable }}", encoding="utf-8")
        rendered = Renderer(folder).render(health_alert(), "text", "en")
        assert rendered.body.startswith("amz-us-01 (amazon): account health 88 is below 90")
        assert "value: 88 (threshold 90)" in rendered.body


class TestPad:
    def test_chinese_labels_align_with_english_ones(self):
        assert display_width("店铺") == 4
        assert display_width(pad("店铺", 10)) == display_width(pad("Store", 10)) == 10
