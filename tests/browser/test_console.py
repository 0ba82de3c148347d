"""The console and /docs in real headless Chromium (Debian's chromium + chromium-driver, installed by make setup).

Screenshots go to tests/output/screenshots/ (not committed): look at them after a run.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_server import LocalServer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from speech_fixtures import requires_espeak, speak

SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"
SENTENCE = "hello world this is a test of the speech engine"


def _driver_path() -> str:
    found = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(found).exists():
        pytest.fail("chromedriver is missing: run `make setup` (it installs Debian's chromium and chromium-driver)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1500"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_driver_path()), options=options)
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _foreign_requests(browser: WebDriver, origin: str) -> list[str]:
    """Every resource the page loaded from anywhere but the local server (a CDN would show up here)."""
    urls: list[str] = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [url for url in urls if not url.startswith(origin)]


def test_docs_render_the_openapi_document_offline(browser: WebDriver, server: LocalServer) -> None:
    browser.get(f"{server.url}/docs")
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    paths = {element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/audio/transcriptions", "/v1/tasks/{task_id}/events", "/v1/usage"} <= paths
    browser.save_screenshot(str(SCREENSHOTS / "docs.png"))
    assert _foreign_requests(browser, server.url) == []


@requires_espeak
def test_console_transcribes_a_dropped_file_and_draws_the_timeline(
    browser: WebDriver, server: LocalServer, tmp_path: Path
) -> None:
    key = server.create_key(balance_usd="1")
    audio = speak(tmp_path / "dropped.wav", f"{SENTENCE}. {SENTENCE}", fmt="wav")
    browser.get(f"{server.url}/")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 30).until(lambda d: "$1" in d.find_element(By.ID, "balance").text)
    # A real drop event on the drop zone, carrying the file (what a user's drag from the desktop delivers).
    browser.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.wav", {type: "audio/wav"}));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        """,
        base64.b64encode(audio.read_bytes()).decode(),
    )
    assert "dropped.wav" in browser.find_element(By.ID, "file-name").text
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 120).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#transcript li") or d.find_element(By.ID, "error").is_displayed()
    )
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
    lines = browser.find_elements(By.CSS_SELECTOR, "#transcript li")
    heard = " ".join(line.text for line in lines).lower()
    assert len(set(heard.split()) & set(SENTENCE.split())) >= 3, heard
    bill = browser.find_element(By.ID, "bill").text
    assert "cost $0.0009" in bill and "balance $0.9991" in bill, bill
    # The timeline is a drawn chart with one bar per segment (and per sound event, when the answer has them).
    bars = browser.execute_script("return Chart.getChart('timeline').getDatasetMeta(0).data.length")
    assert bars >= len(lines) >= 1
    # A timestamp seeks the player.
    stamps = browser.find_elements(By.CSS_SELECTOR, "#transcript .ts")
    target = stamps[-1]
    start = float(str(target.get_attribute("title")).split()[2])  # "play from 3.21 s"
    target.click()
    seconds = browser.execute_script("return document.getElementById('player').currentTime")
    assert abs(seconds - start) < 0.5, (seconds, start)
    # The balance and the usage chart follow the charge.
    WebDriverWait(browser, 30).until(lambda d: "$0.9991" in d.find_element(By.ID, "balance").text)
    usage_points = browser.execute_script("return Chart.getChart('usage-chart').data.labels.length")
    assert usage_points == 2  # the top-up and the charge
    browser.save_screenshot(str(SCREENSHOTS / "console-transcript.png"))
    assert _foreign_requests(browser, server.url) == []


def test_console_shows_the_envelope_message_of_a_refused_request(browser: WebDriver, server: LocalServer) -> None:
    browser.get(f"{server.url}/")
    key_input = browser.find_element(By.ID, "key")
    key_input.clear()
    key_input.send_keys("sk-es-not-a-real-key")
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "API key" in browser.find_element(By.ID, "error").text
    browser.save_screenshot(str(SCREENSHOTS / "console-bad-key.png"))
