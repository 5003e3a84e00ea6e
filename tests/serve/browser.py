"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driving the ``masklab serve`` page.

Used by test_browser.py, and to take the README screenshot on trained runs:
``PYTHONPATH=src python -m tests.serve.browser docs/serve.png RUN [RUN ...] [TABLE.csv]``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                  "--disable-dev-shm-usage")  # fmt: skip


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver) executables, or None when Debian's chromium / chromium-driver are not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextlib.contextmanager
def serving(runs, **options) -> Iterator[str]:
    """Run the app on a free 127.0.0.1 port in a thread; yields its base URL."""
    import uvicorn

    from masklab.serve.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(runs, **options), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium WebDriver (no network besides the page, no first-run or sync traffic)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 60.0):
    """Poll ``return <script>`` in the page until it is truthy; returns its value."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(f"return {script}"))
    except TimeoutException:
        statuses = driver.execute_script("return Array.from(document.querySelectorAll('.panel')).map("
                                         "p => p.id + ': ' + p.querySelector('.status').textContent)")  # fmt: skip
        raise TimeoutException(f"waited {timeout:.0f} s for {script}; panels say {statuses}") from None


def reconstructions(driver, name: str) -> int:
    return int(driver.execute_script(f"return document.getElementById('run-{name}').dataset.reconstructions || 0"))


def paint_row(driver, name: str, row: int, rows: int) -> None:
    """Drag the mouse across patch row ``row`` (of ``rows``) of the MAE panel's canvas, left to right."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.CSS_SELECTOR, f"#run-{name} canvas.paint")
    w, h = canvas.size["width"], canvas.size["height"]
    y = (row + 0.5) * h / rows - h / 2  # offsets are from the element's centre
    actions = ActionChains(driver).move_to_element_with_offset(canvas, int(-w / 2 + 2), int(y)).click_and_hold()
    for step in range(1, 9):
        actions = actions.move_to_element_with_offset(canvas, int(-w / 2 + 2 + step * (w - 4) / 8), int(y))
    actions.release().perform()


def full_page_screenshot(driver, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(600, int(height) + 20))
    time.sleep(0.3)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    return path


def demo(out: str, run_paths: list[str], csv: str | None = None) -> None:
    """The README screenshot: every panel used once on trained runs (a table run scores ``csv``)."""
    from selenium.webdriver.common.by import By

    from masklab.serve.runs import load_runs

    runs = load_runs(run_paths, "cpu")
    with serving(runs) as url, chromium() as driver:
        driver.get(url)
        wait_for(driver, "document.body.dataset.ready === '1'")
        for run in runs:
            panel = f"#run-{run.name}"
            if run.kind == "mae":
                wait_for(driver, f"document.querySelector('{panel}').dataset.reconstructions >= 1")
                driver.find_element(By.CSS_SELECTOR, f"{panel} .show-rollout").click()
                if run.segment is not None and run.segment.examples is not None:  # its segmentation panel
                    wait_for(driver, f"document.querySelector('{panel}-segment').dataset.masks >= 1", 180)
            elif run.kind == "segment" and run.segment.examples is not None:
                wait_for(driver, f"document.querySelector('{panel}').dataset.masks >= 1", 180)
            elif run.kind == "series" and run.examples is not None:
                wait_for(driver, f"document.querySelector('{panel}').dataset.analyses >= 1", 180)
            elif run.kind == "mlm":
                driver.find_element(By.CSS_SELECTOR, f"{panel} .fill-text").clear()
                driver.find_element(By.CSS_SELECTOR, f"{panel} .fill-text").send_keys(
                    "the [MASK] minister said the economy would grow ."
                )
                driver.find_element(By.CSS_SELECTOR, f"{panel} .fill-form button").click()
                wait_for(driver, f"document.querySelector('{panel} canvas.heatmap').width > 0")
            elif run.kind == "clm":
                driver.find_element(By.CSS_SELECTOR, f"{panel} .prompt").clear()
                driver.find_element(By.CSS_SELECTOR, f"{panel} .prompt").send_keys("ROMEO:\n")
                driver.find_element(By.CSS_SELECTOR, f"{panel} .gen-form button[type=submit]").click()
                wait_for(driver, f"document.querySelector('{panel} .status').textContent.endsWith('tokens')", 180)
            elif run.kind == "table" and csv is not None:
                driver.find_element(By.CSS_SELECTOR, f"{panel} .csv-file").send_keys(str(Path(csv).resolve()))
                driver.find_element(By.CSS_SELECTOR, f"{panel} button.score").click()
                wait_for(driver, f"document.querySelector('{panel} .scores table') !== null", 180)
        full_page_screenshot(driver, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    csvs = [a for a in sys.argv[2:] if a.endswith(".csv")]
    demo(sys.argv[1], [a for a in sys.argv[2:] if not a.endswith(".csv")], csvs[0] if csvs else None)
