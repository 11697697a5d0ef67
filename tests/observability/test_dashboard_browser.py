"""The dashboard in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver, against a real ``frugal serve`` process with real traffic.

The page must load with no console errors, show the numbers the ledger holds (the test reads the
ledger itself), and stay readable at a laptop's and a phone's width. Screenshots go to
``build/`` (a CI artifact). Without chromium this skips, except in CI (``CI`` set), where a
missing browser means a broken install step and fails.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frugal.observability import shipped_bytes
from tests.conftest import ServerProcess, digits_config, write_config
from tests.observability.dashboard_traffic import (
    LedgerTruth,
    cached_digits_config,
    ledger_truth,
    send_traffic,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BUILD = Path(__file__).parents[2] / "build"
LAPTOP = (1366, 900)
PHONE = (390, 844)


def _browser_or_skip() -> tuple[str, str]:
    chromium = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    driver = shutil.which("chromedriver") or (CHROMEDRIVER if Path(CHROMEDRIVER).exists() else None)
    missing = [n for n, p in (("chromium", chromium), ("chromium-driver", driver)) if p is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (the dev extra)")
    if missing:
        message = f"{', '.join(missing)} not installed: scripts/install sets it up"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert chromium is not None and driver is not None
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={LAPTOP[0]},{LAPTOP[1]}",
    ]
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def shown(driver: Any, stat: str) -> tuple[float, str]:
    """A panel's number as the page holds it (data-value) and as it reads (its text)."""
    el = driver.find_element("css selector", f'[data-stat="{stat}"]')
    return float(el.get_attribute("data-value")), el.text


def wait_for_numbers(driver: Any, requests: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    def painted(d: Any) -> bool:
        value = d.find_element("css selector", '[data-stat="requests"]').get_attribute("data-value")
        return value is not None and float(value) == requests

    WebDriverWait(driver, 30, poll_frequency=0.05).until(painted)


def pick(select: str, value: str, shown_as: str, driver: Any) -> None:
    """Choose ``value`` in a selector and wait for the page to show stats fetched for it."""
    from selenium.webdriver.support.ui import Select, WebDriverWait

    Select(driver.find_element("id", select)).select_by_value(value)
    WebDriverWait(driver, 30, poll_frequency=0.05).until(
        lambda d: d.find_element("tag name", "body").get_attribute(f"data-{shown_as}") == value
    )


def pick_window(driver: Any, window: str) -> None:
    pick("window", window, "window", driver)
    assert len(driver.find_elements("css selector", "#chart-spend .uplot")) == 1


def check_matches_ledger(driver: Any, truth: LedgerTruth, group: str = "digits") -> None:
    requests, text = shown(driver, "requests")
    assert requests == truth.requests and text == f"{truth.requests:,}"
    cost, text = shown(driver, "cost_usd")
    assert math.isclose(cost, truth.cost_usd, rel_tol=1e-12) and text.startswith("$")
    model, _ = shown(driver, "model_usd")
    overhead, _ = shown(driver, "overhead_usd")
    assert math.isclose(model, truth.model_usd, rel_tol=1e-12)
    assert math.isclose(overhead, truth.overhead_usd, rel_tol=1e-12, abs_tol=1e-15)
    ratio, text = shown(driver, "cache_hit_ratio")
    assert ratio == truth.hit_ratio and text == f"{100 * truth.hit_ratio:.1f}%"
    error_rate, _ = shown(driver, "error_rate")
    assert error_rate == truth.statuses[400] / truth.requests
    rows = driver.find_elements("css selector", "#statuses tbody tr")
    assert {r.find_elements("css selector", "td")[0].text: r.find_elements(
        "css selector", "td")[1].text for r in rows} == {
        str(s): f"{n:,}" for s, n in truth.statuses.items()}  # fmt: skip
    assert driver.find_element("css selector", "#groups tbody td").text == group
    # uPlot drew its three charts.
    assert len(driver.find_elements("css selector", ".uplot canvas")) == 3


def fits_width(driver: Any) -> bool:
    return bool(driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"))  # fmt: skip


def screenshot(driver: Any, name: str, width: int) -> Path:
    """The whole page at ``width``: the window made as tall as the page first."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, height + 120)
    BUILD.mkdir(exist_ok=True)
    path = BUILD / name
    assert driver.save_screenshot(str(path)), path
    return path


def test_the_dashboard_shows_the_ledgers_numbers_in_a_real_browser(
    browser: Any, digits_model_file: Path, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Loaded in chromium after real traffic: no console errors, the ledger's numbers, readable
    at laptop and phone width, screenshots saved under build/."""
    config = write_config(
        tmp_path, cached_digits_config(digits_config(digits_model_file, tmp_path))
    )
    # The traffic's server stops first: a request's row gains its share of the server's work
    # after its cost interval closes, and a stop flushes every row with its share. The page is
    # then read from a second run on the same ledger, so the ledger the test reads is final.
    with ServerProcess(config) as server:
        answered = send_traffic(server.url, digits, requests=300, distinct=60)
    truth = ledger_truth(tmp_path / "ledger.db")
    assert truth.requests == answered
    assert truth.hits == 240 and truth.statuses == {200: 300, 400: 1}
    with ServerProcess(config) as server:
        browser.get(f"{server.url}/dashboard")
        wait_for_numbers(browser, truth.requests)
        check_matches_ledger(browser, truth)
        timing = browser.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "const r = performance.getEntriesByType('resource');"
            "return {load_ms: n.loadEventEnd - n.startTime,"
            " dom_ms: n.domContentLoadedEventEnd - n.startTime,"
            " bytes: n.decodedBodySize + r.filter(e => !e.name.includes('/stats'))"
            ".reduce((s, e) => s + e.decodedBodySize, 0)}"
        )  # fmt: skip
        assert timing["bytes"] == shipped_bytes()
        assert fits_width(browser)
        pick_window(browser, "15m")
        check_matches_ledger(browser, truth)
        pick("group-by", "version", "by", browser)
        assert browser.find_element("css selector", "#groups tbody td").text == "digits:1"
        check_matches_ledger(browser, truth, group="digits:1")
        laptop = screenshot(browser, "dashboard-laptop.png", LAPTOP[0])

        browser.set_window_size(*PHONE)
        browser.refresh()
        wait_for_numbers(browser, truth.requests)
        check_matches_ledger(browser, truth)
        assert fits_width(browser), "the page scrolls sideways at phone width"
        phone = screenshot(browser, "dashboard-phone.png", PHONE[0])

        errors = console_errors(browser)
        assert errors == [], errors
    measured = timing | {"shipped_bytes": shipped_bytes(), "screenshots": [laptop.name, phone.name]}
    (BUILD / "dashboard-timing.json").write_text(json.dumps(measured, indent=2))


def test_with_auth_the_page_takes_a_viewer_key_and_refuses_a_user_key(
    browser: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    """With auth on, a ``#key=`` fragment with a viewer key shows the stats and leaves the
    address bar; a user key typed into the login field is refused with the server's reason."""
    from selenium.webdriver.support.ui import WebDriverWait

    from frugal.access import KeyStore

    data = digits_config(digits_model_file, tmp_path)
    data["auth"] = {"keys": str(tmp_path / "keys.db")}
    store = KeyStore(tmp_path / "keys.db")
    viewer = store.create("grafana", "viewer")[1]
    user = store.create("app", "user")[1]
    with ServerProcess(write_config(tmp_path, data)) as server:
        browser.get(f"{server.url}/dashboard#key={viewer}")
        wait_for_numbers(browser, 0)
        assert "#" not in browser.current_url and viewer not in browser.current_url
        assert not browser.find_element("id", "login").is_displayed()

        browser.execute_script("sessionStorage.clear()")
        browser.get(f"{server.url}/dashboard")
        login = browser.find_element("id", "login")
        WebDriverWait(browser, 30, poll_frequency=0.05).until(lambda d: login.is_displayed())
        browser.find_element("id", "key").send_keys(user)
        login.submit()
        status = browser.find_element("id", "status")
        WebDriverWait(browser, 30, poll_frequency=0.05).until(
            lambda d: "may not read metrics" in status.text
        )
        assert user not in server.log_text() and viewer not in server.log_text()


def test_the_html_report_opens_in_a_real_browser_offline_with_the_ledgers_numbers(
    browser: Any, digits_model_file: Path, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """`frugal report --html` opened from disk in chromium: no console errors, no request but
    the file itself (its figures are embedded and drawn), the ledger's request count and
    dollars, readable at phone width; a screenshot under build/."""
    from tests.optimize.cascades import invoke

    config = write_config(
        tmp_path, cached_digits_config(digits_config(digits_model_file, tmp_path))
    )
    with ServerProcess(config) as server:
        send_traffic(server.url, digits, requests=120, distinct=30)
    truth = ledger_truth(tmp_path / "ledger.db")
    page = tmp_path / "report.html"
    result = invoke("report", "--ledger", tmp_path / "ledger.db", "--since", "1h", "--html", page)
    assert result.exit_code == 0, result.output
    browser.get(page.as_uri())
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith('data:'))"
    )  # fmt: skip
    assert fetched == []
    images = browser.find_elements("css selector", "img")
    assert images and all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
        for i in images
    )  # fmt: skip

    def cell(field: str) -> float:
        found = browser.find_element("css selector", f'[data-field="{field}"]')
        return float(found.get_attribute("data-value"))

    assert cell("rows.total.requests") == truth.requests
    assert math.isclose(cell("rows.total.model_usd"), truth.model_usd, rel_tol=1e-9)
    assert console_errors(browser) == []
    browser.set_window_size(*PHONE)
    assert fits_width(browser) or browser.find_elements("css selector", ".scroll")
    screenshot(browser, "report-html-phone.png", PHONE[0])
