"""A real headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium, for the page tests;
they are skipped, saying why, where either is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "make install-browser (Debian's chromium and chromium-driver)"


def artifacts_dir() -> Path:
    """Where the page tests leave their screenshots: $RRHF_TEST_ARTIFACTS, else out/test-artifacts."""
    folder = Path(os.environ.get("RRHF_TEST_ARTIFACTS") or ROOT / "out" / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a module, logging the page's console."""
    pytest.importorskip("selenium", reason="needs selenium: pip install -e '.[dev]'")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip(f"needs Chromium and chromedriver on PATH: {INSTALL}")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1600", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()
