"""The web page in a real headless Chromium, against a real daemon with the example data.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``). Without them the tests skip with the reason, unless
``WATCHER_REQUIRE_BROWSER=1`` (set by CI), where they fail. Selenium is given the
driver and the browser explicitly, so selenium-manager (which would download) never
runs. Screenshots land in ``test-artifacts/`` (``WATCHER_ARTIFACTS`` names another folder,
e.g. CI's artifact folder): ``web-{page}-{width}-{language}.png`` for the incident chart,
the board and the scorecard with its charts, at a desktop's width (1280) and a phone's
(390), in English and Chinese, each the whole page.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, unavailable
from tests.daemon_harness import Daemon, running

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("WATCHER_ARTIFACTS") or ROOT / "test-artifacts")
WIDTHS = {"desktop": 1280, "phone": 390}


def _browser_problem() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        return (f"no headless browser: {', '.join(missing)} missing "
                "(apt-get install -y chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -c constraints.txt -e '.[test]')"
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    problem = _browser_problem()
    if problem:
        unavailable(problem, "WATCHER_REQUIRE_BROWSER")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     f"--user-data-dir={tmp_path / 'chromium-profile'}", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1280, 900)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it is truthy; a page replaced mid-check is checked again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (NoSuchElementException, StaleElementReferenceException):
            result = None
        if result or time.monotonic() > deadline:
            assert result, f"gave up waiting for {check}"
            return result
        time.sleep(0.1)


def example_incidents(daemon: Daemon, headers: dict[str, str] | None = None
                      ) -> list[dict[str, Any]]:
    """Wait until the drop folder has taken every example file, then list the incidents."""
    processed = daemon.folder / "inbox" / "processed"
    dropped = [p for p in (ROOT / "examples").iterdir()
               if p.suffix in (".jsonl", ".csv") and not p.name.startswith("bad")]
    until(lambda: processed.is_dir() and len([p for p in processed.iterdir()
                                               if p.suffix in (".jsonl", ".csv")])
          >= len(dropped))
    found: list[dict[str, Any]] = httpx.get(f"{daemon.url}/v1/incidents", headers=headers,
                                            timeout=10).json()
    return found


def create_token(folder: Path, role: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "tokens", "create", "pager", "--role", role],
        cwd=folder, capture_output=True, text=True, check=True,
        env={**os.environ, "WATCHER_DATABASE_URL": f"sqlite:///{folder / 'watcher.db'}"})
    return next(line.strip() for line in out.stdout.splitlines() if line.startswith("kw_"))


def rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By
    return list(driver.find_elements(By.CSS_SELECTOR, "tr.incident"))


class TestPageInABrowser:
    def test_filter_open_acknowledge_switch_language_and_fit_a_phone(
            self, browser: Any, tmp_path: Path):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        with running(tmp_path, {}, "--with-examples") as daemon:
            incidents = example_incidents(daemon)
            penalty = next(i for i in incidents if i["rule"] == "penalty-received")
            assert penalty["store"] == "tts-uk-03" and penalty["status"] == "open"

            browser.get(daemon.url + "/")
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
            assert len(rows(browser)) == len(incidents)

            Select(browser.find_element(By.NAME, "severity")).select_by_value("critical")
            Select(browser.find_element(By.NAME, "store")).select_by_value("tts-uk-03")
            browser.find_element(By.ID, "apply").click()
            until(lambda: "store=tts-uk-03" in browser.current_url)
            [row] = rows(browser)
            assert row.get_attribute("data-severity") == "critical"
            assert "tts-uk-03" in row.find_element(By.CSS_SELECTOR, "td.subject").text

            row.find_element(By.CSS_SELECTOR, "a.title").click()
            until(lambda: browser.current_url.endswith(f"/incidents/{penalty['id']}"))
            form = browser.find_element(By.ID, "ack-form")
            form.find_element(By.NAME, "by").send_keys("ana")
            form.find_element(By.NAME, "note").send_keys("calling the store")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

            until(lambda: browser.find_element(By.ID, "status")
                  .get_attribute("data-status") == "acknowledged")
            acked = browser.find_element(By.CSS_SELECTOR, "#timeline li[data-kind=acknowledged]")
            assert "ana" in acked.text and "calling the store" in acked.text
            assert "ack-form" not in browser.page_source  # nothing left to acknowledge

            api = httpx.get(f"{daemon.url}/v1/incidents/{penalty['id']}", timeout=10).json()
            assert (api["status"], api["acknowledged_by"]) == ("acknowledged", "ana")
            metrics = httpx.get(f"{daemon.url}/metrics", timeout=10).text
            assert 'watcher_incidents{status="acknowledged"} 1.0' in metrics

            browser.find_element(By.ID, "lang-switch").click()
            until(lambda: browser.find_element(By.TAG_NAME, "html")
                  .get_attribute("lang") == "zh-CN")
            assert browser.find_element(By.ID, "status").text == "已确认"
            browser.save_screenshot(str(ARTIFACTS / "web-incident-zh-CN.png"))

            browser.get(daemon.url + "/pip")  # no ?lang=: the cookie remembers zh-CN
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
            [pip] = browser.find_elements(By.CSS_SELECTOR, "section.pip")
            assert "2026-07, 2026-08, 2026-09" in pip.find_element(By.CSS_SELECTOR,
                                                                   ".months").text
            assert "li.wei" in pip.text and "150,000" in pip.text
            browser.save_screenshot(str(ARTIFACTS / "web-pip-zh-CN.png"))

            browser.get(daemon.url + "/?lang=en")
            browser.set_window_size(390, 844)
            browser.get(daemon.url + "/")
            assert browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth")
            browser.save_screenshot(str(ARTIFACTS / "web-phone-list.png"))
            browser.get(f"{daemon.url}/incidents/{penalty['id']}")
            assert browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth")
            browser.save_screenshot(str(ARTIFACTS / "web-phone-incident.png"))

    def test_from_the_nav_to_the_team_scorecards_and_one_operators_card(
            self, browser: Any, tmp_path: Path):
        from selenium.webdriver.common.by import By

        with running(tmp_path, {}, "--with-examples") as daemon:
            example_incidents(daemon)
            browser.get(daemon.url + "/?lang=en")
            browser.find_element(By.ID, "nav-scorecards").click()
            until(lambda: browser.current_url.endswith("/scorecards"))
            period = browser.find_element(By.NAME, "period")  # the wall clock's last month
            period.clear()
            period.send_keys("2026-10")
            browser.find_element(By.ID, "show").click()
            until(lambda: "/scorecards?period=2026-10" in browser.current_url)
            operators = {link.text: link for link in browser.find_elements(
                By.CSS_SELECTOR, "#team a.operator-link")}
            assert {"li.wei", "zhao.min"} <= operators.keys()
            browser.save_screenshot(str(ARTIFACTS / "web-scorecards-team.png"))

            operators["li.wei"].click()
            until(lambda: "/scorecards/li.wei?period=2026-10" in browser.current_url)
            assert browser.find_element(By.ID, "title").text == "li.wei: 2026-10"
            result = browser.find_element(By.ID, "result").get_attribute("data-result")
            gmv = browser.find_element(By.CSS_SELECTOR, "#items tr[data-indicator=gmv]")
            assert "118,000" in gmv.text and ">= 150,000" in gmv.text
            assert gmv.get_attribute("data-status") == "fail" and result == "fail"
            browser.save_screenshot(str(ARTIFACTS / "web-scorecard.png"))

            browser.set_window_size(390, 844)  # a phone: the table scrolls, not the page
            browser.refresh()
            assert browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth")
            assert browser.execute_script(
                "const s = document.querySelector('.scroll');"
                "return s.scrollWidth > s.clientWidth")
            browser.save_screenshot(str(ARTIFACTS / "web-phone-scorecard.png"))

    def test_with_a_token_the_page_asks_once_and_keeps_it_in_a_strict_httponly_cookie(
            self, browser: Any, tmp_path: Path):
        from selenium.webdriver.common.by import By

        token = create_token(tmp_path, "responder")
        with running(tmp_path, {}, "--with-examples") as daemon:
            incidents = example_incidents(daemon, {"Authorization": f"Bearer {token}"})
            target = next(i for i in incidents if i["status"] == "open")

            browser.get(f"{daemon.url}/incidents/{target['id']}")
            until(lambda: "/login" in browser.current_url)
            browser.find_element(By.NAME, "token").send_keys(token)
            browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
            until(lambda: browser.current_url.endswith(f"/incidents/{target['id']}"))

            [cookie] = [c for c in browser.get_cookies() if c["name"] == "kw_token"]
            assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
            assert token not in browser.execute_script("return document.cookie")

            form = browser.find_element(By.ID, "resolve-form")
            form.find_element(By.NAME, "by").send_keys("bo")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            until(lambda: browser.find_element(By.ID, "status")
                  .get_attribute("data-status") == "resolved")

            browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
            until(lambda: "/login" in browser.current_url)
            browser.get(daemon.url + "/")
            assert "/login" in browser.current_url


class TestPicturesInABrowser:
    def test_the_incident_chart_and_the_board_on_a_desktop_and_a_phone(
            self, browser: Any, tmp_path: Path):
        from selenium.webdriver.common.by import By

        def fits() -> bool:
            return bool(browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth"))

        with running(tmp_path, {}, "--with-examples") as daemon:
            incidents = example_incidents(daemon)
            gmv = next(i for i in incidents if i["rule"] == "gmv-below-target")
            browser.get(f"{daemon.url}/incidents/{gmv['id']}?lang=en")
            wide = browser.find_element(By.CSS_SELECTOR, "#chart-history svg.wide")
            assert wide.is_displayed()
            assert not browser.find_element(By.CSS_SELECTOR,
                                            "#chart-history svg.narrow").is_displayed()
            # the page's stylesheet (allowed by the CSP) styles the SVG: a blue value line,
            # red breach marks, a dashed threshold
            line = wide.find_element(By.CSS_SELECTOR, ".plot .serie-0 path.line")
            assert line.value_of_css_property("stroke") == "rgb(36, 87, 197)"
            threshold = wide.find_element(By.CSS_SELECTOR, ".plot .serie-1 path.line")
            assert threshold.value_of_css_property("stroke-dasharray") not in ("none", "")
            marks = wide.find_elements(By.CSS_SELECTOR, ".overlay .serie-2 circle")
            assert len(marks) == 4  # July to October, each below the 150,000 target
            assert marks[0].value_of_css_property("fill") == "rgb(179, 38, 30)"
            assert "organic and ad-driven" in browser.find_element(By.ID, "runbook").text
            browser.save_screenshot(str(ARTIFACTS / "web-incident-chart.png"))

            browser.get(daemon.url + "/board")
            stores = [r.get_attribute("data-store")
                      for r in browser.find_elements(By.CSS_SELECTOR, "tr.board-row")]
            assert {"amz-us-01", "amz-de-04", "shopee-my-02", "tts-uk-03"} <= set(stores)
            cell = browser.find_element(
                By.CSS_SELECTOR, "tr[data-store=amz-us-01] td[data-indicator=gmv]")
            assert cell.get_attribute("data-status") == "breaching"
            assert cell.value_of_css_property("background-color") == "rgba(250, 219, 216, 1)"
            browser.save_screenshot(str(ARTIFACTS / "web-board.png"))
            cell.find_element(By.TAG_NAME, "a").click()
            until(lambda: "store=amz-us-01" in browser.current_url)
            assert {r.find_element(By.CSS_SELECTOR, "td.subject").text.split(" ")[0]
                    for r in rows(browser)} == {"amz-us-01"}
            browser.get(daemon.url + "/")  # a desktop shows the filters, folded or not
            assert browser.find_element(By.ID, "filters").is_displayed()

            browser.set_window_size(390, 844)
            browser.get(daemon.url + "/")  # a phone shows the incidents first
            assert not browser.find_element(By.ID, "filters").is_displayed()
            assert not browser.find_element(By.ID, "filters-phone").is_displayed()
            assert rows(browser)[0].location["y"] < 300
            browser.find_element(By.CSS_SELECTOR, "#filter-box summary").click()
            assert browser.find_element(By.ID, "filters-phone").is_displayed()
            browser.get(f"{daemon.url}/incidents/{gmv['id']}")
            narrow = browser.find_element(By.CSS_SELECTOR, "#chart-history svg.narrow")
            assert narrow.is_displayed() and fits()
            assert narrow.size["width"] <= 390
            browser.execute_script("arguments[0].scrollIntoView()", narrow)
            browser.save_screenshot(str(ARTIFACTS / "web-phone-incident-chart.png"))
            browser.get(daemon.url + "/board")
            assert fits()  # the board scrolls inside its box, the page does not
            browser.save_screenshot(str(ARTIFACTS / "web-phone-board.png"))


class TestTheHistoryRulesChartsInABrowser:
    def test_the_quick_starts_daily_incidents_show_their_level_and_projection(
            self, browser: Any, tmp_path: Path):
        """Issue #16: the drop in visitors against its moving alert level (the 7-day mean
        less 30 %), the order defect rate's projection to the 1 % limit; in both languages,
        as screenshots of the charts (``web-incident-{change,trend}-{lang}.png``)."""
        from selenium.webdriver.common.by import By

        with running(tmp_path, {}, "--with-examples") as daemon:
            incidents = example_incidents(daemon)
            drop = next(i for i in incidents if i["rule"] == "visitors-drop")
            odr = next(i for i in incidents if i["rule"] == "odr-rising")
            saved = []
            for lang in ("en", "zh-CN"):
                browser.set_window_size(1280, 1400)  # a close-up is cut at the window's edge
                browser.get(f"{daemon.url}/incidents/{drop['id']}?lang={lang}")
                wide = browser.find_element(By.CSS_SELECTOR, "#chart-history svg.wide")
                level = wide.find_element(By.CSS_SELECTOR, ".plot .serie-1 path.line")
                assert level.is_displayed()
                assert level.value_of_css_property("stroke-dasharray") not in ("none", "")
                baseline = wide.find_element(By.CSS_SELECTOR, ".plot .serie-4 path.line")
                assert baseline.value_of_css_property("stroke") == "rgb(92, 101, 119)"
                [mark] = wide.find_elements(By.CSS_SELECTOR, ".overlay .serie-2 circle")
                assert mark.value_of_css_property("fill") == "rgb(179, 38, 30)"
                summary = browser.find_element(By.ID, "chart-history").text
                assert ("1 of 12 periods with a value breaches it (2026-11-21)" in summary
                        if lang == "en" else
                        "有数据的 12 个周期中 1 个未达标（2026-11-21）" in summary)
                path = ARTIFACTS / f"web-incident-change-{lang}.png"
                assert browser.find_element(By.ID, "chart-history").screenshot(str(path))
                saved.append(path)

                browser.get(f"{daemon.url}/incidents/{odr['id']}?lang={lang}")
                wide = browser.find_element(By.CSS_SELECTOR, "#chart-history svg.wide")
                projection = wide.find_element(By.CSS_SELECTOR, ".plot .serie-4 path.line")
                assert projection.value_of_css_property("stroke-dasharray") not in ("none", "")
                ring = wide.find_element(By.CSS_SELECTOR, "circle.crossing")
                assert ring.value_of_css_property("stroke") == "rgb(179, 38, 30)"
                assert wide.find_element(By.CSS_SELECTOR, "text.crossing").text == \
                    "1.00% ≈ 2026-11-25"
                summary = browser.find_element(By.ID, "chart-history").text
                assert ("reaches 1 % in about 4 days" in summary if lang == "en"
                        else "约 4 天后达到 1 %" in summary)
                path = ARTIFACTS / f"web-incident-trend-{lang}.png"
                assert browser.find_element(By.ID, "chart-history").screenshot(str(path))
                saved.append(path)
                saved.append(whole_page(browser, f"web-incident-trend-page-{lang}"))
                browser.set_window_size(390, 1600)  # a phone: the narrow chart, all of it
                for name, found in (("change", drop), ("trend", odr)):
                    browser.get(f"{daemon.url}/incidents/{found['id']}?lang={lang}")
                    narrow = browser.find_element(By.CSS_SELECTOR, "#chart-history svg.narrow")
                    assert narrow.is_displayed() and narrow.size["width"] <= 390
                    path = ARTIFACTS / f"web-phone-incident-{name}-{lang}.png"
                    assert browser.find_element(By.ID, "chart-history").screenshot(str(path))
                    saved.append(path)
            assert all(p.stat().st_size > 5_000 for p in saved)


def chinese_font_problem() -> str | None:
    """Without a font with Chinese glyphs, zh-CN pages render as boxes: a screenshot of one
    shows nothing worth looking at."""
    try:
        found = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"fc-list failed: {exc}"
    return None if found else ("no font with Chinese glyphs "
                               "(apt-get install -y fonts-wqy-zenhei)")


def whole_page(driver: Any, name: str) -> Path:
    """A screenshot of the whole page at the window's width: the window is made as tall as
    the page (a headless browser captures only what the window shows)."""
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(int(height) + 120, 600), 6000))
    driver.execute_script("window.scrollTo(0, 0)")
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


class TestEveryPictureAtBothWidthsInBothLanguages:
    def test_the_incident_chart_the_board_and_the_scorecard(self, browser: Any,
                                                            tmp_path: Path):
        from selenium.webdriver.common.by import By

        problem = chinese_font_problem()
        if problem:
            unavailable(problem, "WATCHER_REQUIRE_BROWSER")
        with running(tmp_path, {}, "--with-examples") as daemon:
            incidents = example_incidents(daemon)
            gmv = next(i for i in incidents if i["rule"] == "gmv-below-target")
            pages = {"incident-chart": f"/incidents/{gmv['id']}", "board": "/board",
                     "scorecard": "/scorecards/li.wei?period=2026-10"}
            saved = []
            for lang in ("en", "zh-CN"):
                for size, width in WIDTHS.items():
                    for name, path in pages.items():
                        browser.set_window_size(width, 900)
                        browser.get(f"{daemon.url}{path}{'&' if '?' in path else '?'}"
                                    f"lang={lang}")
                        assert browser.find_element(By.TAG_NAME, "html").get_attribute(
                            "lang") == lang
                        assert browser.execute_script(  # the page never scrolls sideways
                            "return document.documentElement.scrollWidth <= window.innerWidth")
                        shown = "wide" if size == "desktop" else "narrow"
                        for svg in browser.find_elements(By.CSS_SELECTOR,
                                                         "svg.chart-svg:not(.small)"):
                            assert svg.is_displayed() == (shown in svg.get_attribute("class"))
                            if svg.is_displayed():
                                assert svg.size["width"] <= width
                        if name == "scorecard":
                            chart = browser.find_element(
                                By.CSS_SELECTOR, f"#chart-scores svg.{shown}")
                            grades = chart.find_elements(By.CSS_SELECTOR, "text.grade")
                            assert [g.text for g in grades] and all(
                                g.value_of_css_property("font-weight") == "600"
                                for g in grades)
                            stripes = chart.find_elements(By.CSS_SELECTOR, "rect.band-0")
                            assert stripes[0].value_of_css_property("fill") == \
                                "rgb(238, 241, 246)"
                            failed = chart.find_elements(By.CSS_SELECTOR,
                                                         ".overlay .serie-2 circle")
                            assert failed and failed[0].value_of_css_property("fill") == \
                                "rgb(179, 38, 30)"
                        figure = {"incident-chart": "chart-history",
                                  "scorecard": "chart-scores"}.get(name)
                        if figure:  # the chart alone, as a person sees it, up close
                            close_up = ARTIFACTS / f"web-{name}-only-{width}-{lang}.png"
                            assert browser.find_element(By.ID, figure).screenshot(
                                str(close_up))
                            saved.append(close_up)
                        saved.append(whole_page(browser, f"web-{name}-{width}-{lang}"))
            assert len(saved) == 20 and all(p.stat().st_size > 5_000 for p in saved)

    def test_the_day_fields_speak_the_pages_language_not_the_browsers(
            self, browser: Any, tmp_path: Path):
        from selenium.webdriver.common.by import By

        with running(tmp_path, {}, "--with-examples") as daemon:  # the browser is en-US
            example_incidents(daemon)
            browser.get(daemon.url + "/?lang=zh-CN")
            since = browser.find_element(By.CSS_SELECTOR, "#filters input[name=since]")
            assert since.get_attribute("type") == "text"
            assert since.get_attribute("placeholder") == "年-月-日"
            since.send_keys("11/05/2026")
            browser.find_element(By.ID, "apply").click()
            until(lambda: "since=11%2F05%2F2026" in browser.current_url)
            error = browser.find_element(By.CSS_SELECTOR, "p.error").text
            assert "“11/05/2026”不是有效日期，请按 年-月-日 填写" in error
            since = browser.find_element(By.CSS_SELECTOR, "#filters input[name=since]")
            assert since.get_attribute("value") == "11/05/2026"
            whole_page(browser, "web-day-error-1280-zh-CN")
            since.clear()
            since.send_keys("2026-11-01")
            browser.find_element(By.ID, "apply").click()
            until(lambda: "since=2026-11-01" in browser.current_url)
            assert not browser.find_elements(By.CSS_SELECTOR, "p.error")
