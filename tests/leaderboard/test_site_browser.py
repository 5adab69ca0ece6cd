"""The built site in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

Served from a localhost http.server thread; no network otherwise. Checks: no console errors, rows in
the right order, a header click re-sorts (direction from higher_is_better), no injected script runs,
and a submission page shows its chart. Screenshots are saved under the test's tmp dir (paths printed).
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if _chromium() is None or not CHROMEDRIVER.is_file():
        pytest.skip("needs Debian's chromium + chromium-driver: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1500,1100",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit chromedriver: Selenium Manager must not try to download one.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served_site(site: Path):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output readable
        pass


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _column(driver, table_id: str, key: str) -> list[str]:
    """The data-v values of a column (by header data-key) of a table, in displayed order."""
    return driver.execute_script(
        """
        const t = document.getElementById(arguments[0]);
        const idx = [...t.tHead.rows[0].cells].findIndex(h => h.dataset.key === arguments[1]);
        return [...t.tBodies[0].rows].map(r => r.cells[idx].getAttribute('data-v'));
        """,
        table_id, key,
    )


def test_index_loads_sorts_and_submission_page_shows_chart(browser, served_site, site: Path, tmp_path: Path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    browser.get(f"{served_site}/index.html")
    table = browser.find_element(By.ID, "table-mme3dr-v1")
    assert _severe(browser) == []
    with pytest.raises(NoAlertPresentException):  # the hostile model name's alert() never ran
        browser.switch_to.alert.text  # noqa: B018

    # Server-side order: best CLIP first, as in leaderboard.json.
    expected = [s["model_name"] for s in
                json.loads((site / "leaderboard.json").read_text())["benchmarks"]["mme3dr-v1"]["submissions"]]
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("data-model") for r in rows] == expected
    clip = [float(v) for v in _column(browser, "table-mme3dr-v1", "clip")]
    assert clip == sorted(clip, reverse=True)

    # KD is lower-is-better: the first click puts the smallest first, the second reverses.
    header = table.find_element(By.CSS_SELECTOR, "th[data-key='kd_incep']")
    header.click()
    kd = [float(v) for v in _column(browser, "table-mme3dr-v1", "kd_incep")]
    assert kd == sorted(kd) and kd != sorted(kd, reverse=True)
    assert header.get_attribute("aria-sort") == "ascending"
    assert table.find_element(By.CSS_SELECTOR, "tbody tr td.rank").text == "1"
    header.click()
    kd = [float(v) for v in _column(browser, "table-mme3dr-v1", "kd_incep")]
    assert kd == sorted(kd, reverse=True)
    table.find_element(By.CSS_SELECTOR, "th[data-key='clip']").click()
    assert [float(v) for v in _column(browser, "table-mme3dr-v1", "clip")] == clip
    index_shot = tmp_path / "leaderboard-index.png"
    browser.save_screenshot(str(index_shot))
    assert _severe(browser) == []

    # A submission page: its chart has one visible bar per category.
    browser.find_element(By.LINK_TEXT, "Synthetic Tetra").click()
    chart = browser.find_element(By.CSS_SELECTOR, "#category-chart svg.chart")
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
    assert len(bars) == 5 and all(b.size["width"] > 0 for b in bars)
    assert chart.size["width"] > 300
    thumbs = browser.find_elements(By.CSS_SELECTOR, ".thumbs img")
    assert len(thumbs) == 10 and all(img.get_property("naturalWidth") > 0 for img in thumbs)
    browser.set_window_size(1500, 1700)  # the page screenshot shows metrics, chart, facts and thumbnails
    page_shot = tmp_path / "leaderboard-submission.png"
    browser.save_screenshot(str(page_shot))
    assert _severe(browser) == []
    print(f"\nscreenshots: {index_shot} {page_shot}")
    assert index_shot.stat().st_size > 10_000 and page_shot.stat().st_size > 10_000


def test_index_shows_rank_intervals_and_marks_close_neighbours(browser, served_site, site: Path):
    from selenium.webdriver.common.by import By

    browser.get(f"{served_site}/index.html")
    table = browser.find_element(By.ID, "table-mme3dr-v1")
    header = table.find_element(By.CSS_SELECTOR, "th.rank-ci")
    assert header.text == "95% rank" and header.is_displayed()
    subs = json.loads((site / "leaderboard.json").read_text())["benchmarks"]["mme3dr-v1"]["submissions"]
    cells = table.find_elements(By.CSS_SELECTOR, "tbody tr td.rank-ci")
    assert len(cells) == len(subs)
    for cell, sub in zip(cells, subs, strict=True):
        low, high = sub["rank_ci95"]
        assert cell.is_displayed() and cell.text.startswith(f"{low}–{high}")
        marks = cell.find_elements(By.CSS_SELECTOR, ".ns")
        assert len(marks) == (1 if sub["differs_from_next"] is False else 0)
        if marks:
            assert marks[0].text == "≈" and "not significantly different" in marks[0].get_attribute("title")
    assert _severe(browser) == []
