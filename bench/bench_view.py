"""`rrhf view` at HH scale: writing the page, and opening it in headless Chromium, against a 1k-prompt page.

For each size (default 1k, the baseline, then 10k and 40k prompts; `--sizes` takes more, e.g. 160000) it
writes bench_scale's seeded HH-style scored file (an ~800-character prompt, k=4 responses of ~400 characters),
runs `rrhf view` on it as its own process, then opens the page in Debian's headless Chromium (through Selenium)
and measures: the seconds until the first page of cards is drawn, a search over every prompt and response,
and the JavaScript heap. Each figure is also printed as a ratio to the baseline's, per prompt: a page that
renders one page of cards at a time grows its open time with the data it parses, not with what it lays out.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_scale import write_inputs

ROOT = Path(__file__).resolve().parents[1]


def open_browser():
    """Headless Chromium, or None where it or Selenium is missing."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    if not chromium or not driver:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1600", "--enable-precise-memory-info"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def measure(browser, page: Path) -> dict[str, float]:
    """Seconds to the first cards, seconds for a search to redraw, and the JS heap in MiB."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get("about:blank")
    start = time.perf_counter()
    browser.get(page.as_uri())
    ready = "return document.body.dataset.ready === '1'"
    WebDriverWait(browser, 600, poll_frequency=0.01).until(lambda b: b.execute_script(ready))
    opened = time.perf_counter() - start
    status = browser.find_element(By.ID, "status")
    before = status.text
    start = time.perf_counter()
    browser.find_element(By.ID, "search").send_keys("garden recipe")
    WebDriverWait(browser, 600, poll_frequency=0.01).until(lambda b: status.text != before)
    searched = time.perf_counter() - start - 0.15  # less the page's input debounce
    heap = browser.execute_script("return performance.memory ? performance.memory.usedJSHeapSize : 0") / 2**20
    return {"open": opened, "search": searched, "heap": heap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,40000", help="prompts per size; the first is the baseline")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    browser = open_browser()
    if browser is None:
        print("bench view: skipped, needs Chromium, chromedriver and selenium (make install-browser)")
        return
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="rrhf-bench-view-") as tmp:
            for size in sizes:
                folder = Path(tmp) / f"n{size}"
                folder.mkdir()
                scored = write_inputs(folder, size)[0]
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "rrhf_cli", "view", str(scored), "-o", str(folder / "view.html"),
                                "-q"], check=True, cwd=ROOT)
                written = time.perf_counter() - start
                figures = measure(browser, folder / "view.html")
                rows.append((size, (folder / "view.html").stat().st_size / 2**20, written, figures))
                for path in folder.iterdir():
                    path.unlink()
    finally:
        browser.quit()
    base_size, _, base_written, base = rows[0]
    print(f"bench view: HH-style scored files, k=4; baseline: the {base_size:,}-prompt page; "
          "ratios are per prompt against it")
    print(f"  {'prompts':>8}  {'page MiB':>8}  {'rrhf view s':>11}  {'open s':>7}  {'search s':>8}  {'JS heap MiB':>11}"
          f"  {'open/prompt':>11}  {'view/prompt':>11}")
    for size, mib, written, figures in rows:
        scale = size / base_size
        print(f"  {size:>8,}  {mib:>8.1f}  {written:>11.2f}  {figures['open']:>7.2f}  {figures['search']:>8.2f}  "
              f"{figures['heap']:>11.0f}  {figures['open'] / base['open'] / scale:>10.2f}x  "
              f"{written / base_written / scale:>10.2f}x")


if __name__ == "__main__":
    main()
