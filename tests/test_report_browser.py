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
