"""The report page in a real headless Chromium at 1280 px: the cases table fits, status column included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_report import _run_dir

from mme3dr import report

pytestmark = pytest.mark.browser

CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not CHROMEDRIVER.is_file():
        pytest.skip("needs Debian's chromium + chromium-driver: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,900",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_cases_table_fits_1280_px_with_its_status_column(browser, tmp_path: Path):
    import json

    from mme3dr.results import SampleRecord, write_samples

    run = _run_dir(tmp_path)
    # Worst realistic content: a long prompt, one unbreakable token, a long failure detail.
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    samples[0]["prompt"] = "A very long prompt about a wooden toy train " * 12 + "x" * 150
    samples[1].update(status="failed", failure="corrupt_file", metrics={},
                      failure_detail="/a/very/long/path/" * 20 + ": the file could not be parsed")
    write_samples([SampleRecord(**s) for s in samples], run / "samples.jsonl")
    index = report.write_report(run)
    browser.get(index.as_uri())
    width = browser.execute_script("return window.innerWidth")
    assert width <= 1280
    right = browser.execute_script(
        "const t = [...document.querySelectorAll('table')].pop();"
        "const cells = [...t.rows[0].cells]; return cells[cells.length - 1].getBoundingClientRect().right;")
    page = browser.execute_script("return document.documentElement.scrollWidth")
    assert right <= width and page <= width, (right, page, width)


def test_cases_sort_by_a_clicked_column_and_categories_never_split_mid_word(browser, tmp_path: Path):
    run = _run_dir(tmp_path)
    browser.get(report.write_report(run).as_uri())
    rows = "return [...document.querySelectorAll('#cases tbody tr')].map(r => r.cells[0].textContent.trim())"
    assert browser.execute_script(rows) == ["c0", "c1", "c2"]
    clip = browser.execute_script(
        "return [...document.querySelectorAll('#cases th')]"
        ".findIndex(th => th.textContent.trim() === 'clip')")
    header = browser.find_elements("css selector", "#cases th")[clip]
    header.click()  # ascending
    assert browser.execute_script(rows) == ["c0", "c1", "c2"]
    header.click()  # descending: the clip column holds 10, 11, 12
    assert browser.execute_script(rows) == ["c2", "c1", "c0"]
    # "mechanical" stays on one line (it used to wrap as "mechanica l"), on a narrow window too
    browser.set_window_size(800, 900)
    browser.refresh()
    lines = browser.execute_script(
        "const td = [...document.querySelectorAll('#cases tbody td')]"
        ".find(t => t.textContent === 'mechanical');"
        "const r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length;")
    browser.set_window_size(1280, 900)
    assert lines == 1
