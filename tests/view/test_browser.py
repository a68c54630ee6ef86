"""The page in a real browser: it loads clean, its controls change what is shown, and text never runs."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.view.conftest import artifacts_dir

SOURCES = ("policy-0", "gpt-4")
WORDS = "the a sea river mountain quiet bright answer model kind short long helpful polite story".split()
HOSTILE = ['<script>window.__ran = "script"</script>', '<img src=x onerror="window.__ran = \'img\'">']


def scored_rows(count: int, seed: int = 0, words: int = 30) -> list[dict[str, Any]]:
    """`count` chat prompts with two responses from each of two sources, scored; deterministic."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        responses = [{"text": " ".join(rng.choice(WORDS) for _ in range(words)), "source": SOURCES[j % 2],
                      "score": round(rng.random(), 4)} for j in range(4)]
        rows.append({"id": f"p{i:05d}", "prompt": [{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": f"Question {i}?"}],
                     "responses": responses})
    return rows


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def open_page(browser: Any, path: Path) -> float:
    """Open a page and wait for its first cards; the seconds it took. Console entries left by earlier pages are
    read and dropped first."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")
    started = time.perf_counter()
    browser.get(path.as_uri())
    WebDriverWait(browser, 60).until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))
    return time.perf_counter() - started


def console_errors(browser: Any) -> list[dict[str, Any]]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def cards(browser: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, "#cards > .card")


def choose(browser: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, select_id)).select_by_value(value)


def shown_ids(browser: Any, expected: list[str]) -> None:
    """Wait until the cards shown are those of `expected`, in order."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda b: [c.get_attribute("data-id") for c in cards(b)] == expected)


def shown_responses(card: Any) -> list[dict[str, Any]]:
    """The visible responses of a card: index, source and score as the page shows them."""
    return card.parent.execute_script(
        "return [...arguments[0].querySelectorAll('.response')].filter(r => !r.hidden).map(r => ({"
        "index: +r.dataset.index, source: r.dataset.source, score: r.querySelector('.score').textContent}))", card)


@pytest.fixture(scope="module")
def scored_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    from tests.conftest import rrhf_process

    folder = tmp_path_factory.mktemp("scored-page")
    rows = scored_rows(60)
    rows[47]["responses"][1]["text"] = "a needle-in-the-haystack answer"
    for text, row in zip(HOSTILE, rows[10:12], strict=True):
        row["responses"][0]["text"] = text
    rows[12]["prompt"][1]["content"] = "</script><script>window.__ran = 'prompt'</script>"
    rows[0]["responses"][2]["finish_reason"] = "length"
    scored = write(folder / "scored.jsonl", rows)
    page = folder / "scored.html"
    done = rrhf_process("view", scored, "-o", page)
    assert done.returncode == 0, done.stderr
    return page, rows


def test_the_page_loads_clean_and_its_text_never_runs(browser, scored_page):
    page, rows = scored_page
    open_page(browser, page)
    assert console_errors(browser) == []
    assert len(cards(browser)) == 20 and "of 60" in browser.find_element("id", "status").text
    # The one response the token limit cut is marked, and only it.
    cut = browser.execute_script("return [...document.querySelectorAll('.response')].filter(r => "
                                 "r.querySelector('.cut')).map(r => [r.closest('.card').dataset.id, +r.dataset.index])")
    assert cut == [["p00000", 2]]
    browser.save_screenshot(str(artifacts_dir() / "view-scored.png"))
    assert browser.execute_script("return window.__ran === undefined")
    search(browser, "window.__ran")
    shown = {card.get_attribute("data-id"): card.text for card in cards(browser)}
    assert sorted(shown) == ["p00010", "p00011", "p00012"]
    assert HOSTILE[0] in shown["p00010"] and HOSTILE[1] in shown["p00011"] and "</script>" in shown["p00012"]
    assert browser.execute_script("return window.__ran === undefined")
    assert console_errors(browser) == []


def search(browser: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # read before typing: the page's 150 ms debounce can fire before a slow driver's next round trip
    before = browser.find_element(By.ID, "status").text
    box = browser.find_element(By.ID, "search")
    box.clear()
    box.send_keys(text)
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "status").text != before)


def test_search_finds_a_response_on_a_later_page(browser, scored_page):
    page, _ = scored_page
    open_page(browser, page)
    assert "p00047" not in [c.get_attribute("data-id") for c in cards(browser)]
    search(browser, "NEEDLE-in-the")
    assert [c.get_attribute("data-id") for c in cards(browser)] == ["p00047"]
    assert "1 of 1" in browser.find_element("id", "status").text or "1–1 of 1" in browser.find_element(
        "id", "status").text


def test_an_id_link_shows_that_card_alone_and_keys_turn_pages(browser, scored_page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    page, _ = scored_page
    open_page(browser, page)
    ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
    assert cards(browser)[0].get_attribute("data-id") == "p00020"
    browser.get(page.as_uri() + "#p00047")
    shown_ids(browser, ["p00047"])
    browser.execute_script("location.hash = 'p00005'")  # hashchange fires after the script returns
    shown_ids(browser, ["p00005"])
    assert console_errors(browser) == []


def test_sorting_changes_the_order_of_responses_and_of_prompts(browser, scored_page):
    page, rows = scored_page
    open_page(browser, page)
    first = cards(browser)[0]
    assert [r["index"] for r in shown_responses(first)] == [0, 1, 2, 3]
    choose(browser, "order", "score")
    scores = [float(r["score"]) for r in shown_responses(cards(browser)[0])]
    assert scores == sorted(scores, reverse=True) and scores != [float(r["score"]) for r in rows[0]["responses"]]
    choose(browser, "sort", "best")
    best_first = max(rows, key=lambda row: max(r["score"] for r in row["responses"]))["id"]
    assert cards(browser)[0].get_attribute("data-id") == best_first != "p00000"
    choose(browser, "sort", "worst")
    worst_first = min(rows, key=lambda row: min(r["score"] for r in row["responses"]))["id"]
    assert cards(browser)[0].get_attribute("data-id") == worst_first


def test_filtering_by_source_shows_only_its_responses(browser, scored_page):
    page, _ = scored_page
    open_page(browser, page)
    assert {r["source"] for card in cards(browser) for r in shown_responses(card)} == set(SOURCES)
    choose(browser, "source", "gpt-4")
    shown = [r for card in cards(browser) for r in shown_responses(card)]
    assert shown and {r["source"] for r in shown} == {"gpt-4"} and {r["index"] for r in shown} == {1, 3}


def test_a_ranked_page_draws_its_pairs_and_filters_dropped_prompts(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from tests.conftest import rrhf_process

    rows = scored_rows(30, seed=1)
    for row in rows[::5]:  # no ranking signal: rank drops these
        for response in row["responses"]:
            response["score"] = 0.5
    scored = write(tmp_path / "scored.jsonl", rows)
    ranked = tmp_path / "ranked.jsonl"
    assert rrhf_process("rank", scored, "-o", ranked, "--pairs", "best-vs-rest").returncode == 0
    assert rrhf_process("view", ranked, "-o", tmp_path / "ranked.html").returncode == 0
    open_page(browser, tmp_path / "ranked.html")
    assert console_errors(browser) == []
    kept = cards(browser)[1]
    assert len(kept.find_elements(By.CSS_SELECTOR, "svg.arcs path.arc")) == 3  # best against each of the rest
    browser.save_screenshot(str(artifacts_dir() / "view-ranked.png"))
    browser.find_element(By.ID, "dropped").click()
    assert [c.get_attribute("data-id") for c in cards(browser)] == [row["id"] for row in rows[::5]]
    assert all("no ranking signal" in c.text for c in cards(browser))


def test_a_10k_prompt_page_opens_with_one_page_of_cards(browser, tmp_path):
    from tests.conftest import rrhf_process

    scored = write(tmp_path / "big.jsonl", scored_rows(10_000, seed=2, words=60))
    done = rrhf_process("view", scored, "-o", tmp_path / "big.html")
    assert done.returncode == 0, done.stderr
    seconds = open_page(browser, tmp_path / "big.html")
    print(f"10k prompts, {(tmp_path / 'big.html').stat().st_size / 2**20:.1f} MiB page: open in {seconds:.2f} s")
    assert console_errors(browser) == []
    assert len(cards(browser)) == 20 and "of 10,000" in browser.find_element("id", "status").text
    assert browser.execute_script("return document.querySelectorAll('.response').length") == 80
    search(browser, "question 9999?")
    assert [c.get_attribute("data-id") for c in cards(browser)] == ["p09999"]
    assert seconds < 30  # a bound on a hang, not a timing target: `make bench` measures the time


def test_a_page_in_many_data_blocks_shows_every_prompt(browser, tmp_path):
    """Past V8's longest string (~512 M characters) one data block could not be parsed: the data goes in blocks,
    here made small so that 60 prompts take many, and the page finds a prompt from a later one."""
    from stages.view.config import ViewConfig
    from stages.view.load import load_targets
    from stages.view.page import write_page

    rows = scored_rows(60, seed=3)
    rows[55]["responses"][2]["text"] = "a needle in the last block"
    scored = write(tmp_path / "scored.jsonl", rows)
    page = tmp_path / "blocks.html"
    with page.open("w", encoding="utf-8") as handle:
        write_page(handle, load_targets([str(scored)]), ViewConfig(), chunk_chars=4000)
    assert page.read_text(encoding="utf-8").count('class="prompts"') >= 10
    open_page(browser, page)
    assert console_errors(browser) == []
    assert "of 60" in browser.find_element("id", "status").text
    search(browser, "needle in the last block")
    assert [c.get_attribute("data-id") for c in cards(browser)] == ["p00055"]
