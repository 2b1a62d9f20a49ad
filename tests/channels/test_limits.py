"""Truncation by the service's unit: WeCom counts UTF-8 bytes, Slack characters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from watcher.channels.limits import Limit, limit_for, truncate, truncate_utf8


class TestTruncateUtf8:
    def test_text_that_fits_is_unchanged(self):
        assert truncate_utf8("店铺 amz-us-01", 2048) == "店铺 amz-us-01"

    def test_chinese_is_cut_by_bytes_not_characters(self):
        text = "账号健康分低于阈值" * 300  # 2700 characters, 8100 bytes
        cut = truncate_utf8(text, 2048, "…")
        assert len(cut.encode("utf-8")) <= 2048
        assert cut.endswith("…")
        assert len(cut) < 700  # about 2048 / 3 characters

    def test_never_splits_a_character(self):
        text = "a" + "中" * 10  # 1 + 30 bytes; a cut at 5 bytes falls inside the 2nd 中
        assert truncate_utf8(text, 5, "") == "a中"

    @given(st.text(min_size=0, max_size=400), st.integers(min_value=0, max_value=300))
    def test_always_within_the_limit_and_valid_utf8(self, text: str, limit: int):
        cut = truncate_utf8(text, limit, "…")
        encoded = cut.encode("utf-8")
        assert len(encoded) <= max(limit, 0)
        assert encoded.decode("utf-8") == cut
        if len(text.encode("utf-8")) <= limit:
            assert cut == text
        else:
            assert text.startswith(cut.removesuffix("…").rstrip()) or cut in ("", "…")


class TestLimit:
    def test_wecom_limits_are_bytes_per_message_type(self):
        assert limit_for("wecombot", "text") == Limit(max_bytes=2048)
        assert limit_for("wecombot", "markdown") == Limit(max_bytes=4096)

    def test_slack_counts_characters(self):
        assert truncate("x" * 9000, limit_for("slack", "*"), "…") == "x" * 7999 + "…"

    def test_unknown_services_are_not_cut(self):
        assert truncate("y" * 50000, limit_for("mailto", "html")) == "y" * 50000
