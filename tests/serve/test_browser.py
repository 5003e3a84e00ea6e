"""A real browser on the page: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium loads
it, paints a mask on the MAE canvas and gets the reconstruction, fills a [MASK] sentence, streams a
continuation; on series and segmentation runs it forecasts, uploads a series file, segments inside a box and
removes the subject; and saves screenshots. ``make test-browser`` installs what it needs and runs this."""

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


def test_series_and_segmentation_panels_in_headless_chromium(series_runs, segment_runs, series_dirs, tmp_path):
    from selenium.webdriver.common.by import By

    runs = [series_runs["series"], segment_runs["seg"], segment_runs["unfinished"]]
    with serving(runs) as url, chromium() as driver:
        driver.get(url)
        wait(driver, "document.body.dataset.ready === '1'")
        ids = [e.get_attribute("id") for e in driver.find_elements(By.CSS_SELECTOR, ".panel")]
        assert ids == ["run-series", "run-seg", "run-seg-segment", "run-unfinished"]

        # Series: the first example comes up reconstructed, forecast and scored; a longer horizon forecasts again.
        wait(driver, "document.getElementById('run-series').dataset.analyses >= 1")
        for view in ("s-recon", "s-forecast"):
            src = driver.find_element(By.CSS_SELECTOR, f"#run-series img.{view}").get_attribute("src")
            assert src.startswith("data:image/png;base64,"), view
        assert "highest at steps" in driver.find_element(By.CSS_SELECTOR, "#run-series .anomaly-line").text
        assert "no held-out split" in driver.find_element(By.CSS_SELECTOR, "#run-series .notes").text
        horizon = driver.find_element(By.CSS_SELECTOR, "#run-series .horizon")
        horizon.clear()
        horizon.send_keys("12")
        driver.find_element(By.CSS_SELECTOR, "#run-series .forecast-form button").click()
        wait(driver, "document.querySelector('#run-series .forecast-line').textContent.startsWith('12 steps')")
        # an upload: series 2 of the run's own file
        driver.find_element(By.CSS_SELECTOR, "#run-series .series-file").send_keys(str(series_dirs / "s.npz"))
        wait(driver, "document.getElementById('run-series').dataset.analyses >= 2")
        assert "of 10 in the file" in driver.find_element(By.CSS_SELECTOR, "#run-series .picked-line").text
        horizon.clear()
        horizon.send_keys("999")
        driver.find_element(By.CSS_SELECTOR, "#run-series .forecast-form button").click()
        wait(driver, "document.querySelector('#run-series .status').classList.contains('error')")
        assert (
            "horizon: a horizon of 999 steps is too long"
            in driver.find_element(By.CSS_SELECTOR, "#run-series .status").text
        )

        # Segmentation: the first example's mask comes up; a box and an edit (an RGBA cut-out to download).
        wait(driver, "document.getElementById('run-seg-segment').dataset.masks >= 1")
        box = driver.find_element(By.CSS_SELECTOR, "#run-seg-segment .box")
        box.send_keys("0,0,8,8\n")
        wait(
            driver, "document.querySelector('#run-seg-segment .result-line').textContent.includes('inside box 0,0,8,8')"
        )
        driver.find_element(By.CSS_SELECTOR, "#run-seg-segment button[data-edit='remove-subject']").click()
        wait(driver, "document.getElementById('run-seg-segment').dataset.edits >= 1")
        link = driver.find_element(By.CSS_SELECTOR, "#run-seg-segment .g-download")
        assert link.get_attribute("href").startswith("blob:") and link.get_attribute("download") == "remove-subject.png"
        # The interrupted head: its notes are shown and remove-subject is off.
        wait(driver, "document.getElementById('run-unfinished').dataset.masks >= 1")
        notes = driver.find_element(By.CSS_SELECTOR, "#run-unfinished .notes").text
        assert "stopped at step 2 of 50" in notes and "remove-subject is not offered" in notes
        assert not driver.find_element(
            By.CSS_SELECTOR, "#run-unfinished button[data-edit='remove-subject']"
        ).is_enabled()

        shot = full_page_screenshot(driver, os.environ.get("MASKLAB_SCREENSHOT_2") or tmp_path / "serve-2.png")
        assert shot.stat().st_size > 10_000
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "/forecast" not in e["message"]]
        assert not severe, severe  # no script errors (the 400 of the long horizon above is expected)
