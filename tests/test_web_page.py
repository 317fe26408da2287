"""The web page in a real headless Chromium: search, paging, the state in the URL, the key
prompt, fields and the filter builder, upload and delete, light and dark themes, and the API
docs. Screenshots are saved under .data/screenshots and checked (size, not blank, theme)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from server_process import KEYS, Server

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / ".data" / "screenshots"
STATIC = ROOT / "src" / "simsearch" / "server" / "static"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WINDOW = (1200, 900)
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
TEXTS = {
    "moon": "Apollo 11 landed the first humans on the Moon in 1969.",
    "guitar": "A man plays an acoustic guitar on a small stage.",
    "cake": "Bake the chocolate cake for forty minutes.",
    "mars": "Rovers have explored the surface of Mars for decades.",
}


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
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def fresh_collection(server: Server, name: str, texts: dict[str, str], meta: list[Any]) -> None:
    httpx.delete(f"{server.url}/collections/{name}", headers=ADMIN)
    httpx.post(f"{server.url}/collections", headers=ADMIN, json={"name": name}).raise_for_status()
    httpx.post(
        f"{server.url}/collections/{name}/add",
        headers=ADMIN,
        timeout=120,
        json={"ids": list(texts), "texts": list(texts.values()), "metadata": meta},
    ).raise_for_status()


def wait(browser: Any, condition: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition)


def by(css: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return (By.CSS_SELECTOR, css)


def find(browser: Any, css: str) -> Any:
    return browser.find_element(*by(css))


def find_all(browser: Any, css: str) -> list[Any]:
    return list(browser.find_elements(*by(css)))


def open_with_key(browser: Any, url: str, key: str) -> None:
    """Open the page and give it a key, as a person does the first time."""
    browser.get(url)
    wait(browser, lambda d: find(d, "#key-prompt").is_displayed())
    find(browser, "#key-prompt-input").send_keys(key)
    find(browser, "#key-prompt-button").click()
    wait(browser, lambda d: find_all(d, "#collection option"))


def choose(browser: Any, collection: str) -> None:
    from selenium.webdriver.support.ui import Select

    wait(
        browser,
        lambda d: any(
            o.get_attribute("value") == collection for o in find_all(d, "#collection option")
        ),
    )
    Select(find(browser, "#collection")).select_by_value(collection)
    wait(browser, lambda d: "items" in find(d, "#stats").text)


def search(browser: Any, query: str, k: int | None = None) -> None:
    """Search and wait for its answer (an empty query browses the items instead)."""
    box = find(browser, "#query")
    box.clear()
    box.send_keys(query)
    if k is not None:
        find(browser, "#k").clear()
        find(browser, "#k").send_keys(str(k))
    submit(browser)


def submit(browser: Any) -> None:
    """Press the search button and wait until the page has its answer."""
    browser.execute_script("document.getElementById('status').textContent = ''")
    find(browser, "#search-button").click()
    wait(browser, lambda d: find(d, "#status").text not in ("", "Searching…"))


def ranked_ids(browser: Any) -> list[str]:
    # One script reads them all: the list may be redrawn between two WebDriver calls.
    ids: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('#results .hit .id')].map(e => e.title)"
    )
    return ids


def screenshot(browser: Any, name: str) -> Any:
    """Save a screenshot and check it: the window's size, and far from one flat colour."""
    from PIL import Image, ImageStat

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert browser.save_screenshot(str(path))
    image = Image.open(path).convert("RGB")
    viewport = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    assert list(image.size) == viewport
    assert image.size[0] == WINDOW[0]
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 50, "the page looks blank"
    assert max(ImageStat.Stat(image).stddev) > 10, "the page looks blank"
    return image


def test_the_page_and_its_scripts_name_no_other_host() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        text = text.replace("http://www.w3.org/2000/svg", "")  # a name, never fetched
        assert not re.search(r"(?:https?:)?//[a-z0-9-]+\.[a-z]", text, re.I), path.name


def test_search_page_shows_ranked_results(keyed_server: Server, browser: Any) -> None:
    from PIL import ImageStat

    fresh_collection(keyed_server, "webdocs", TEXTS, [{"kind": k, "n": 1} for k in TEXTS])
    open_with_key(browser, keyed_server.url + "/", KEYS["all-read"])
    # The key is kept for this tab only, never in localStorage (which outlives the session).
    stored = (
        "return [sessionStorage.getItem('simsearch-key'), localStorage.getItem('simsearch-key')]"
    )
    assert browser.execute_script(stored) == [KEYS["all-read"], None]
    browser.execute_script("localStorage.setItem('simsearch-key', 'left-by-an-older-page')")
    browser.refresh()
    wait(browser, lambda d: find_all(d, "#collection option"))
    assert browser.execute_script(stored) == [KEYS["all-read"], None]
    choose(browser, "webdocs")
    stats = find(browser, "#stats").text
    assert "items 4" in stats
    assert "dimension 384" in stats
    assert "cosine" in stats
    assert "minilm" in stats

    search(browser, "astronauts landing on the moon")
    assert "result(s)" in find(browser, "#status").text
    hits = find_all(browser, "#results .hit")
    assert hits[0].find_element(*by(".id")).text == "moon"
    assert "Apollo 11" in hits[0].find_element(*by(".text")).text
    assert "score" in hits[0].find_element(*by(".num")).text
    # Metadata is a table of field and value, not a line of JSON.
    rows = hits[0].find_elements(*by("table.meta tr"))
    assert [r.text for r in rows] == ["kind moon", "n 1"]
    assert find_all(browser, "#histogram rect")

    # A filter narrows the results; a malformed one shows the server's message.
    where = find(browser, "#where")
    where.send_keys('{"kind": {"$in": ["cake", "mars"]}}')
    submit(browser)
    assert len(find_all(browser, "#results .hit")) == 2
    where.clear()
    where.send_keys('{"kind": {"$near": 1}}')
    submit(browser)
    assert "unknown operator" in find(browser, "#status").text
    where.clear()
    submit(browser)
    assert len(find_all(browser, "#results .hit")) == 4
    image = screenshot(browser, "search-page")
    assert ImageStat.Stat(image.convert("L")).mean[0] > 128  # the light theme


def test_a_multivector_collection_shows_hits_like_any_other(
    keyed_server: Server, browser: Any
) -> None:
    name = "webtokens"
    httpx.delete(f"{keyed_server.url}/collections/{name}", headers=ADMIN)
    body = {"name": name, "encoder": "minilm-l6-v2-tokens"}
    httpx.post(f"{keyed_server.url}/collections", headers=ADMIN, json=body).raise_for_status()
    httpx.post(
        f"{keyed_server.url}/collections/{name}/add",
        headers=ADMIN,
        timeout=120,
        json={
            "ids": list(TEXTS),
            "texts": list(TEXTS.values()),
            "metadata": [{"kind": k} for k in TEXTS],
        },
    ).raise_for_status()
    open_with_key(browser, keyed_server.url + "/", KEYS["all-read"])
    choose(browser, name)
    assert "items 4" in find(browser, "#stats").text
    search(browser, "astronauts landing on the moon")
    assert "result(s)" in find(browser, "#status").text
    assert ranked_ids(browser)[0] == "moon"
    hit = find_all(browser, "#results .hit")[0]
    assert "Apollo 11" in hit.find_element(*by(".text")).text
    assert "score" in hit.find_element(*by(".num")).text


def test_results_are_paged_and_the_state_lives_in_the_url(
    keyed_server: Server, browser: Any
) -> None:
    long_id = "a-very-long-identifier-" + "x" * 80
    texts = {f"item-{i:02d}": f"Note number {i} about the weather in spring" for i in range(24)}
    texts[long_id] = "A note about the weather with a very long id"
    meta = [{"n": i} for i in range(25)]
    fresh_collection(keyed_server, "webpaged", texts, meta)
    open_with_key(browser, keyed_server.url + "/", KEYS["all-read"])
    choose(browser, "webpaged")
    search(browser, "weather notes", k=25)
    assert find(browser, "#pager").is_displayed()
    assert len(find_all(browser, "#results .hit")) == 10
    assert "Page 1 of 3" in find(browser, "#page-info").text
    first_page = ranked_ids(browser)
    # The histogram counts all 25 results, with a score axis and a count axis.
    assert "all 25 result(s)" in find(browser, "#histogram-title").text
    assert len(find_all(browser, "#histogram .x-axis text.tick")) == 5
    assert len(find_all(browser, "#histogram .y-axis text.tick")) >= 2
    labels = [t.text for t in find_all(browser, "#histogram text.label")]
    assert labels == ["score", "hits"]
    counts = browser.execute_script(
        "return [...document.querySelectorAll('#histogram rect title')]"
        ".map(t => Number(t.textContent.split(' ')[0]))"
    )
    assert sum(counts) == 25

    find(browser, "#next-page").click()
    wait(browser, lambda d: "Page 2 of 3" in find(d, "#page-info").text)
    second_page = ranked_ids(browser)
    assert not set(first_page) & set(second_page)
    assert find(browser, ".hit .rank").text == "11."
    state = parse_qs(urlsplit(browser.current_url).query)
    assert state == {
        "collection": ["webpaged"],
        "q": ["weather notes"],
        "k": ["25"],
        "page": ["2"],
    }

    # The URL alone brings back the same page of the same search.
    url = browser.current_url
    browser.get("about:blank")
    browser.get(url)
    wait(browser, lambda d: "Page 2 of 3" in find(d, "#page-info").text)
    assert ranked_ids(browser) == second_page
    assert find(browser, "#query").get_attribute("value") == "weather notes"
    browser.back()  # the page before, as the browser's history has it
    wait(browser, lambda d: "about:blank" in d.current_url)
    browser.forward()
    wait(browser, lambda d: "Page 2 of 3" in find(d, "#page-info").text)
    find(browser, "#prev-page").click()
    wait(browser, lambda d: "Page 1 of 3" in find(d, "#page-info").text)
    browser.back()
    wait(browser, lambda d: "Page 2 of 3" in find(d, "#page-info").text)

    # A long id is cut on screen and whole in its tooltip.
    find(browser, "#prev-page").click()
    wait(browser, lambda d: "Page 1 of 3" in find(d, "#page-info").text)
    for page in (1, 2):
        if long_id in ranked_ids(browser):
            break
        find(browser, "#next-page").click()
        wait(browser, lambda d, p=page: f"Page {p + 1} of 3" in find(d, "#page-info").text)
    (cell,) = [c for c in find_all(browser, ".hit .id") if c.get_attribute("title") == long_id]
    cut = "return arguments[0].scrollWidth > arguments[0].clientWidth"
    assert browser.execute_script(cut, cell)
    screenshot(browser, "paged-results")


def test_a_visitor_without_a_key_gets_a_prompt_not_a_401(
    keyed_server: Server, browser: Any
) -> None:
    # A collection of its own, so the list after the key is not empty when run alone.
    fresh_collection(keyed_server, "webprompt", TEXTS, [{} for _ in TEXTS])
    browser.get(keyed_server.url + "/")
    wait(browser, lambda d: find(d, "#key-prompt").is_displayed())
    page = find(browser, "body").text
    assert "This server asks for an API key" in page
    assert "401" not in page
    find(browser, "#key-prompt-input").send_keys("not-a-key-of-this-server")
    find(browser, "#key-prompt-button").click()
    wait(browser, lambda d: "not accepted" in find(d, "#key-prompt-error").text)
    assert "401" not in find(browser, "body").text
    screenshot(browser, "key-prompt")
    find(browser, "#key-prompt-input").send_keys(KEYS["all-read"])
    find(browser, "#key-prompt-button").click()
    wait(browser, lambda d: not find(d, "#key-prompt").is_displayed())
    assert find_all(browser, "#collection option")


def test_the_filter_builder_writes_the_filter_from_the_fields(
    keyed_server: Server, browser: Any
) -> None:
    from selenium.webdriver.support.ui import Select

    meta = [{"kind": k, "year": 2000 + i} for i, k in enumerate(TEXTS)]
    fresh_collection(keyed_server, "webfields", TEXTS, meta)
    open_with_key(browser, keyed_server.url + "/", KEYS["all-read"])
    choose(browser, "webfields")
    search(browser, "space")
    assert len(find_all(browser, "#results .hit")) == 4
    # The field list: the collection's catalogue where the server gives one, else the
    # fields of the results.
    wait(browser, lambda d: len(find_all(d, "#fields tr")) == 3)
    fields = browser.execute_script(
        "return [...document.querySelectorAll('#fields tr td:first-child')].map(e => e.textContent)"
    )
    assert fields == ["kind", "year"]
    # They come from the collection's catalogue, with their types and counts.
    assert find(browser, "#fields-note").text == "Click a field to filter on it."
    assert [r.text for r in find_all(browser, "#fields tr")[1:]] == [
        "kind text 4 4",
        "year integer 4 4",
    ]

    find_all(browser, "#fields tr")[1].click()  # a condition on "kind"
    (row,) = find_all(browser, "#filter-rows .condition")
    assert row.find_element(*by(".field")).get_attribute("value") == "kind"
    Select(row.find_element(*by(".op"))).select_by_value("$in")
    row.find_element(*by(".value")).send_keys("cake, mars")
    assert find(browser, "#where").get_attribute("value") == '{"kind":{"$in":["cake","mars"]}}'
    find(browser, "#add-condition").click()
    second = find_all(browser, "#filter-rows .condition")[1]
    second.find_element(*by(".field")).send_keys("year")
    Select(second.find_element(*by(".op"))).select_by_value("$gte")
    second.find_element(*by(".value")).send_keys("2003")
    assert find(browser, "#where").get_attribute("value") == (
        '{"$and":[{"kind":{"$in":["cake","mars"]}},{"year":{"$gte":2003}}]}'
    )
    submit(browser)
    assert ranked_ids(browser) == ["mars"]
    assert "where" in parse_qs(urlsplit(browser.current_url).query)
    Select(find(browser, "#filter-join")).select_by_value("$or")
    submit(browser)
    assert len(ranked_ids(browser)) == 2
    screenshot(browser, "filter-builder")


def test_upload_and_delete_need_a_write_key_and_say_what_happened(
    keyed_server: Server, browser: Any, tmp_path: Path
) -> None:
    fresh_collection(keyed_server, "webwrite", {"seed": "A first item"}, [{"kind": "seed"}])
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text(
        '{"id": "j1", "text": "Penguins live in the southern hemisphere", "year": 2011}\n'
        '{"id": "j2", "text": "Volcanoes erupt molten rock", "year": 2012}\n'
    )
    csv = tmp_path / "items.csv"
    csv.write_text(
        'id,text,year,reviewed\nc1,"Glaciers carve valleys, slowly",2012,true\n'
        "c2,Deserts get little rain,,false\n"
    )
    open_with_key(browser, keyed_server.url + "/", KEYS["all-read"])
    choose(browser, "webwrite")
    find(browser, "#upload-file").send_keys(str(jsonl))
    find(browser, "#upload-button").click()
    wait(browser, lambda d: "may not do that" in find(d, "#upload-status").text)
    assert "0 of 2 stored" in find(browser, "#upload-status").text

    find(browser, "#api-key").clear()
    find(browser, "#api-key").send_keys(KEYS["admin"])
    find(browser, "#query").click()  # 'change' on the key box
    wait(browser, lambda d: find_all(d, "#collection option"))
    choose(browser, "webwrite")
    find(browser, "#upload-file").send_keys(str(jsonl))
    find(browser, "#upload-button").click()
    wait(browser, lambda d: "Stored 2 item(s) from items.jsonl" in find(d, "#upload-status").text)
    wait(browser, lambda d: "items 3" in find(d, "#stats").text)
    find(browser, "#upload-file").send_keys(str(csv))
    find(browser, "#upload-button").click()
    wait(browser, lambda d: "Stored 2 item(s) from items.csv" in find(d, "#upload-status").text)
    wait(browser, lambda d: "items 5" in find(d, "#stats").text)
    # The same file again is refused by add (ids exist), and replaces by upsert.
    find(browser, "#upload-file").send_keys(str(csv))
    find(browser, "#upload-button").click()
    wait(browser, lambda d: "already" in find(d, "#upload-status").text.lower())
    from selenium.webdriver.support.ui import Select

    Select(find(browser, "#upload-mode")).select_by_value("upsert")
    find(browser, "#upload-button").click()
    wait(browser, lambda d: "(upsert)" in find(d, "#upload-status").text)

    got = httpx.post(
        f"{keyed_server.url}/collections/webwrite/get", headers=ADMIN, json={"ids": ["c1", "c2"]}
    ).json()["items"]
    # CSV cells are typed, and an empty one is missing.
    assert [i["metadata"] for i in got] == [
        {"year": 2012, "reviewed": True},
        {"reviewed": False},
    ]
    assert got[0]["text"] == "Glaciers carve valleys, slowly"

    search(browser, "volcano")
    assert ranked_ids(browser)[:1] == ["j2"]
    browser.execute_script("window.confirm = () => true")
    find_all(browser, ".hit .delete")[0].click()
    wait(browser, lambda d: "Deleted 'j2'" in find(d, "#status").text)
    assert "j2" not in ranked_ids(browser)
    wait(browser, lambda d: "items 4" in find(d, "#stats").text)
    r = httpx.post(
        f"{keyed_server.url}/collections/webwrite/get", headers=ADMIN, json={"ids": ["j2"]}
    )
    assert r.status_code == 404
    screenshot(browser, "upload-and-delete")


def test_light_and_dark_themes(keyed_server: Server, browser: Any) -> None:
    from PIL import ImageStat

    def background() -> str:
        return str(browser.execute_script("return getComputedStyle(document.body).backgroundColor"))

    open_with_key(browser, keyed_server.url + "/", KEYS["all-read"])
    light_bg = background()
    light = ImageStat.Stat(screenshot(browser, "theme-light").convert("L")).mean[0]
    find(browser, "#theme-toggle").click()
    theme = "return document.documentElement.dataset.theme"
    wait(browser, lambda d: d.execute_script(theme) == "dark")
    assert background() != light_bg
    dark = ImageStat.Stat(screenshot(browser, "theme-dark").convert("L")).mean[0]
    assert dark < light / 2
    # The choice is remembered; the system's preference rules until a choice is made.
    browser.refresh()
    wait(browser, lambda d: find_all(d, "#collection option"))
    assert background() != light_bg
    browser.execute_script("localStorage.removeItem('simsearch-theme')")
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    browser.refresh()
    wait(browser, lambda d: find_all(d, "#collection option"))
    assert browser.execute_script(theme) is None
    assert background() != light_bg
    assert find(browser, "#theme-toggle").text == "Light theme"


def test_api_docs_render_from_the_server_alone(keyed_server: Server, browser: Any) -> None:
    browser.get(keyed_server.url + "/docs")
    wait(browser, lambda d: len(find_all(d, ".opblock")) > 5)
    assert "simsearch" in find(browser, ".info .title").text
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded
    assert all(name.startswith(keyed_server.url + "/") for name in loaded), loaded
    screenshot(browser, "api-docs")


def test_an_empty_query_browses_the_items_page_by_page(keyed_server: Server, browser: Any) -> None:
    texts = {f"note-{i:02d}": f"Note {i}" for i in range(23)}
    fresh_collection(keyed_server, "webbrowse", texts, [{"n": i} for i in range(23)])
    open_with_key(browser, keyed_server.url + "/", KEYS["admin"])
    choose(browser, "webbrowse")
    # Choosing a collection shows its first items, in the order they were added.
    wait(browser, lambda d: "23 item(s)" in find(d, "#status").text)
    assert ranked_ids(browser) == [f"note-{i:02d}" for i in range(10)]
    assert "Page 1 of 3" in find(browser, "#page-info").text
    assert not find(browser, "#histogram-box").is_displayed()
    assert not find_all(browser, "#results .hit .bar")  # no scores to draw
    find(browser, "#next-page").click()
    wait(browser, lambda d: ranked_ids(d)[:1] == ["note-10"])
    assert parse_qs(urlsplit(browser.current_url).query) == {
        "collection": ["webbrowse"],
        "page": ["2"],
    }
    browser.refresh()
    wait(browser, lambda d: ranked_ids(d)[:1] == ["note-10"])

    find(browser, "#where").send_keys('{"n": {"$gte": 20}}')
    submit(browser)
    assert "3 item(s) match the filter" in find(browser, "#status").text
    assert ranked_ids(browser) == ["note-20", "note-21", "note-22"]
    assert find(browser, "#pager").is_displayed() is False

    browser.execute_script("window.confirm = () => true")
    find_all(browser, ".hit .delete")[0].click()
    wait(browser, lambda d: ranked_ids(d) == ["note-21", "note-22"])
    wait(browser, lambda d: "items 22" in find(d, "#stats").text)
    screenshot(browser, "browse")


def test_the_mode_switch_searches_lexically_and_lives_in_the_url(
    keyed_server: Server, browser: Any
) -> None:
    from selenium.webdriver.support.ui import Select

    fresh_collection(keyed_server, "webmodes", TEXTS, [{"kind": k} for k in TEXTS])
    open_with_key(browser, keyed_server.url + "/", KEYS["all-read"])
    choose(browser, "webmodes")
    Select(find(browser, "#mode")).select_by_value("lexical")
    search(browser, "Apollo")
    assert ranked_ids(browser) == ["moon"]  # only the text holding the word
    assert "mode=lexical" in browser.current_url
    Select(find(browser, "#mode")).select_by_value("hybrid")
    search(browser, "Apollo")
    assert ranked_ids(browser)[0] == "moon"
    assert len(ranked_ids(browser)) == len(TEXTS)
