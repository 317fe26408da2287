"""The search page in a real headless Chromium: type a query, see ranked results."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_process import KEYS, Server

SCREENSHOTS = Path(__file__).resolve().parents[1] / ".data" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (make test installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_search_page_shows_ranked_results(keyed_server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    admin = {"Authorization": f"Bearer {KEYS['admin']}"}
    httpx.delete(f"{keyed_server.url}/collections/webdocs", headers=admin)
    httpx.post(
        f"{keyed_server.url}/collections", headers=admin, json={"name": "webdocs"}
    ).raise_for_status()
    texts = {
        "moon": "Apollo 11 landed the first humans on the Moon in 1969.",
        "guitar": "A man plays an acoustic guitar on a small stage.",
        "cake": "Bake the chocolate cake for forty minutes.",
        "mars": "Rovers have explored the surface of Mars for decades.",
    }
    httpx.post(
        f"{keyed_server.url}/collections/webdocs/add",
        headers=admin,
        timeout=120,
        json={
            "ids": list(texts),
            "texts": list(texts.values()),
            "metadata": [{"kind": k} for k in texts],
        },
    ).raise_for_status()

    browser.get(keyed_server.url + "/")
    wait = WebDriverWait(browser, 30)
    key_box = browser.find_element(By.ID, "api-key")
    key_box.send_keys(KEYS["all-read"])
    key_box.send_keys(Keys.TAB)  # 'change' reloads the collections with the key
    wait.until(
        lambda d: any(
            o.get_attribute("value") == "webdocs"
            for o in d.find_elements(By.CSS_SELECTOR, "#collection option")
        )
    )
    # The key is kept for this tab only, never in localStorage (which outlives the session).
    stored = (
        "return [sessionStorage.getItem('simsearch-key'), localStorage.getItem('simsearch-key')]"
    )
    assert browser.execute_script(stored) == [KEYS["all-read"], None]
    browser.execute_script("localStorage.setItem('simsearch-key', 'left-by-an-older-page')")
    browser.refresh()
    wait.until(
        lambda d: any(
            o.get_attribute("value") == "webdocs"
            for o in d.find_elements(By.CSS_SELECTOR, "#collection option")
        )
    )
    assert browser.execute_script(stored) == [KEYS["all-read"], None]
    Select(browser.find_element(By.ID, "collection")).select_by_value("webdocs")
    query = browser.find_element(By.ID, "query")
    query.send_keys("astronauts landing on the moon")
    browser.find_element(By.ID, "search-button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results .hit")))
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    assert len(hits) == 4
    assert hits[0].find_element(By.CLASS_NAME, "id").text == "moon"
    assert "Apollo 11" in hits[0].find_element(By.CLASS_NAME, "text").text
    assert "score" in hits[0].find_element(By.CLASS_NAME, "num").text
    assert browser.find_elements(By.CSS_SELECTOR, "#histogram rect")
    assert "result(s)" in browser.find_element(By.ID, "status").text

    # A filter narrows the results; a malformed one shows the server's message.
    where = browser.find_element(By.ID, "where")
    where.send_keys('{"kind": {"$in": ["cake", "mars"]}}')
    browser.find_element(By.ID, "search-button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .hit")) == 2)
    where.clear()
    where.send_keys('{"kind": {"$near": 1}}')
    browser.find_element(By.ID, "search-button").click()
    wait.until(lambda d: "unknown operator" in d.find_element(By.ID, "status").text)

    where.clear()
    browser.find_element(By.ID, "search-button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .hit")) == 4)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / "search-page.png"))
