"""A real browser on the page: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium loads
it, paints a mask on the MAE canvas and gets the reconstruction, fills a [MASK] sentence, streams a
continuation, and saves a screenshot. ``make test-browser`` installs what it needs and runs this."""

import os

import pytest

from tests.serve.browser import chromium, chromium_paths, full_page_screenshot, paint_row, reconstructions, serving
from tests.serve.browser import wait_for as wait

pytestmark = [pytest.mark.browser, pytest.mark.slow]
pytest.importorskip("selenium")
if chromium_paths() is None:
    pytest.skip("needs chromium and chromium-driver (make test-browser installs them)", allow_module_level=True)


def test_page_in_headless_chromium(runs, tmp_path):
    from selenium.webdriver.common.by import By

    with serving(runs) as url, chromium() as driver:
        driver.get(url)
        wait(driver, "document.body.dataset.ready === '1'")
        titles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".panel h2 .run-name")]
        assert titles == ["mae", "mlm", "clm", "table"]

        # MAE: the first example comes up with a random mask; clear it, paint the top patch row, reconstruct.
        wait(driver, "document.getElementById('run-mae').dataset.reconstructions >= 1")
        driver.find_element(By.CSS_SELECTOR, "#run-mae button.clear").click()
        before = reconstructions(driver, "mae")
        paint_row(driver, "mae", row=0, rows=4)
        wait(driver, f"document.getElementById('run-mae').dataset.reconstructions > {before}")
        line = driver.find_element(By.CSS_SELECTOR, "#run-mae .result-line").text
        assert line.startswith("25% of patches hidden"), line  # the 4 patches of the top row, of 16
        for view in ("v-masked", "v-recon", "v-pasted"):
            src = driver.find_element(By.CSS_SELECTOR, f"#run-mae img.{view}").get_attribute("src")
            assert src.startswith("data:image/png;base64,"), view
        driver.find_element(By.CSS_SELECTOR, "#run-mae .show-rollout").click()

        # MLM: fill a [MASK] sentence -> a table of top-5 candidates, then the attention heatmap.
        box = driver.find_element(By.CSS_SELECTOR, "#run-mlm .fill-text")
        box.clear()
        box.send_keys("the dog ran to the [MASK] .")
        driver.find_element(By.CSS_SELECTOR, "#run-mlm .fill-form button").click()
        wait(driver, "document.querySelectorAll('#run-mlm .fill-result tr').length === 6")
        cells = driver.find_elements(By.CSS_SELECTOR, "#run-mlm .fill-result td:last-child")
        probabilities = [float(c.text) for c in cells]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
        wait(driver, "document.querySelector('#run-mlm canvas.heatmap').width > 0")

        # CLM: a continuation streams in; the status line ends with the token count.
        driver.find_element(By.CSS_SELECTOR, "#run-clm .gen-form button[type=submit]").click()
        wait(driver, "document.querySelector('#run-clm .status').textContent.endsWith('tokens')")
        assert driver.find_element(By.CSS_SELECTOR, "#run-clm .g-prompt").text == "the cat"

        # Bad input shows the server's message in the panel.
        box.clear()
        box.send_keys("no blank here")
        driver.find_element(By.CSS_SELECTOR, "#run-mlm .fill-form button").click()
        wait(driver, "document.querySelector('#run-mlm .status').classList.contains('error')")
        assert "text: the text has no [MASK]" in driver.find_element(By.CSS_SELECTOR, "#run-mlm .status").text

        shot = full_page_screenshot(driver, os.environ.get("MASKLAB_SCREENSHOT") or tmp_path / "serve.png")
        assert shot.stat().st_size > 10_000
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "/fill" not in e["message"]]
        assert not severe, severe  # no script errors (the 400 of the bad fill above is expected)
