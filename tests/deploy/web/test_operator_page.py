"""The live operator page in a real headless Chromium (Selenium): parts arrive, NG overlays, drift state.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium
(the ``dev`` extra); skipped with the reason when either is missing. The screenshot is kept
in the test's tmp dir (``operator_page.png``); ``CDO_PAGE_SHOT=path`` also copies it there
(how ``docs/img/operator_page.png`` was made).
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from _live_run import live_run  # noqa: F401 - a fixture


def _chromium():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or next((p for p in ("/usr/lib/chromium/chromedriver",) if os.path.exists(p)),
                                                  None)
    if not browser or not driver:
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver; .ci/run does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture
def browser():
    drv = _chromium()
    yield drv
    drv.quit()


def test_page_shows_parts_arriving_ng_overlays_and_the_drift_state(live_run, browser, tmp_path, wait):
    from selenium.webdriver.common.by import By

    run = live_run("--http", "127.0.0.1:0")
    browser.get(run.wait_url())
    text = lambda el_id: browser.find_element(By.ID, el_id).text  # noqa: E731
    assert wait(lambda: text("conn") == "live", 15)
    assert text("processed") == "0" and text("drift-state") == "collecting"

    run.drop("OONOON")
    assert wait(lambda: text("processed") == "6", 30), text("processed")
    assert (text("ok-count"), text("ng-count"), text("ng-rate")) == ("4", "2", "33.3 %")
    cards = browser.find_elements(By.CSS_SELECTOR, "#parts .part")
    assert [c.get_attribute("data-decision") for c in cards] == ["NG", "OK", "OK", "NG", "OK", "OK"]
    overlays = browser.find_elements(By.CSS_SELECTOR, "#parts .part.NG img.overlay")
    assert len(overlays) == 2
    assert wait(lambda: all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", im)
                            for im in overlays), 10)

    # 130 more parts: the tiny bundle's calibration (mean 0.45, std 0.03) is far from these parts (~0.34):
    # warn at the 100th OK part, alarm at the next check (110th)
    run.drop("".join("N" if i % 9 == 4 else "O" for i in range(130)), start=6)
    assert wait(lambda: text("processed") == "136", 60), text("processed")
    assert wait(lambda: text("drift-state") == "alarm", 10), text("drift-state")
    assert "alarm" in browser.find_element(By.ID, "drift-state").get_attribute("class")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#parts .part")) == 12
    shot = tmp_path / "operator_page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("CDO_PAGE_SHOT"):
        shutil.copyfile(shot, os.environ["CDO_PAGE_SHOT"])

    run.proc.send_signal(signal.SIGTERM)
    stdout, _ = run.proc.communicate(timeout=30)
    assert run.proc.returncode == 0
    ok, ng = int(text("ok-count")), int(text("ng-count"))
    assert f"processed 136 | OK {ok} | NG {ng} | errors 0" in stdout  # the page agrees with the CLI's summary
