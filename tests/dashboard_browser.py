"""Headless Chromium (Debian's package) driven by Selenium, for the dashboard's
browser tests: installing it if missing, starting it, and small page helpers.

Screenshots go to ``test-artifacts/dashboard/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.utils import REPO_ROOT, wait_for_condition

ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver"


def ensure_chromium() -> None:
    """Install Debian's chromium if missing (as .ci/run does); fail, naming the
    command, if that is impossible here; skip only where there is no apt at all."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"NO BROWSER TESTS: chromium is not installed and this machine has no "
                    f"apt-get to install it ({INSTALL} on Debian)")
    result = subprocess.run(["sh", "-c", f"{INSTALL} || (apt-get update && {INSTALL})"],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"the browser tests need Debian's chromium; '{INSTALL}' failed:\n"
                    f"{result.stderr[-2000:]}")


def chromium() -> Iterator:
    """A headless Chromium under Selenium, quit (and its profile removed) afterwards."""
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="shoal-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def text(driver, css: str) -> str:
    """The element's text, read in one script call: the pages re-render every
    second, so an element handle kept between calls may be gone."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css)


def open_page(driver, page: str) -> None:
    driver.execute_script(f"location.hash = '#{page}'")
    wait_for_condition(lambda: driver.execute_script(
        "return document.getElementById('page').dataset.page") == page, timeout=20)


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
