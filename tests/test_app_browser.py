"""The dashboard in a real browser: Debian's chromium driven by Playwright against `python app.py`.

One app process (lite mode, demo corpus, fresh NEWSREC_HOME so the first index build is part of the start)
and one page serve the whole module. Timings are printed as benchmark figures, not asserted. Screenshots go
to a temporary folder; set NEWSREC_SCREENSHOTS=docs/screenshots to refresh the README's pictures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) to run the browser tests",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("NEWSREC_SCREENSHOTS") or tempfile.mkdtemp(prefix="newsrec-shots-"))
XSS_TITLE = "<img src=x onerror=alert(1)> Stadium lights fail during derby"
START_TIMEOUT_S = 180  # the first run embeds the demo corpus on CPU
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
FIGURES: dict[str, float] = {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def report(name: str, seconds: float) -> None:
    FIGURES[name] = seconds
    sys.__stdout__.write(f"\n[benchmark] {name}: {seconds * 1000:.0f} ms\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    home = tmp_path_factory.mktemp("browser_home")
    env = {
        **os.environ,
        "NEWSREC_HOME": str(home),
        "NEWSREC_EMBEDDER": "lite",
        "NEWSREC_RERANKER": "lite",
        "NEWSREC_CORPUS": "demo",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SPACE_ID", None)
    log = open(home / "app.log", "w")  # noqa: SIM115 (closed at teardown)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{(home / 'app.log').read_text()[-3000:]}")
            if time.perf_counter() - started > START_TIMEOUT_S:
                pytest.fail(
                    f"app.py did not serve within {START_TIMEOUT_S} s:\n{(home / 'app.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        report("app start (process -> page served)", time.perf_counter() - started)
        yield url, started, home
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    url, started, _ = server
    dialogs: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.dialogs = dialogs
        page.goto(url)
        page.wait_for_selector("#results .news-card", timeout=START_TIMEOUT_S * 1000)
        report("app start (process -> first cards, index build included)", time.perf_counter() - started)
        yield page
        browser.close()


FRESH = "#results .card-grid:not([data-stale])"


def mark_stale(page) -> None:
    """Tag the cards on screen, so waiting for new ones cannot be satisfied by the old (same query) ones."""
    page.evaluate("() => document.querySelectorAll('#results .card-grid').forEach(g => g.dataset.stale = '1')")


def run_query(page, query: str) -> float:
    """Type a query, press Recommend, wait for its cards; returns seconds from click to cards on screen."""
    page.fill("#query textarea, #query input", query)
    mark_stale(page)
    clicked = time.perf_counter()
    page.click("#run")
    page.locator(f'{FRESH}[data-query="{query}"] .news-card').first.wait_for(timeout=30_000)
    return time.perf_counter() - clicked


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def pick_user(page, name: str) -> None:
    """Choose a reader and wait for the recommendations that follow the change."""
    mark_stale(page)
    page.click("#user-picker input")
    page.get_by_role("option", name=name).first.click()
    page.locator(f"{FRESH} .news-card").first.wait_for(timeout=30_000)


def test_pick_user_shows_history_cards(page):
    pick_user(page, "Kevin Zhang")
    history = page.locator("#history .history-card")
    assert history.count() >= 5
    assert history.first.locator("img").count() == 1  # thumbnails are served from the corpus folder
    assert page.locator("#history .history-card img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    assert "Lakers" in page.locator("#history .persona").inner_text()


def test_chinese_and_english_queries_show_scored_cards(page):
    pick_user(page, "Daniel Weber")
    assert "Battery engineer" in page.locator("#history .persona").inner_text()
    for query in ("最新电池技术突破", "Apple launch event"):
        report(f"query -> cards ({query})", run_query(page, query))
        cards = page.locator("#results .news-card")
        assert cards.count() >= 10
        for i in range(cards.count()):
            card = cards.nth(i)
            assert card.get_attribute("data-news-id")
            assert float(card.locator(".score.rerank").get_attribute("data-score")) == pytest.approx(
                float(card.locator(".score.rerank b").inner_text()), abs=5e-4
            )
            assert card.locator(".score.retrieval b").inner_text()
            assert card.locator(".why").inner_text().strip()
    # a second, warm run of the same query: the figure the issue's ≤ 1 s target is about
    report("query -> cards (warm, Apple launch event again)", run_query(page, "Apple launch event"))
    page.locator("#results").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "main.png", full_page=True)


def test_side_by_side_shows_both_lists(page):
    run_query(page, "Apple launch event")
    open_tab(page, "Side by side")
    retrieval = page.locator("#side-by-side .side-col.retrieval .side-row")
    reranked = page.locator("#side-by-side .side-col.reranked .side-row")
    retrieval.first.wait_for()
    assert retrieval.count() >= 10 and reranked.count() >= 10
    assert page.locator("#side-by-side .move").count() >= 20  # every row says where it went or came from
    page.screenshot(path=SHOTS / "side_by_side.png", full_page=True)
    open_tab(page, "Recommendations")


def test_charts_render_with_plotly(page):
    run_query(page, "NBA最新战况")
    open_tab(page, "Charts")
    page.wait_for_selector("#charts .js-plotly-plot", timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('#charts .js-plotly-plot').length === 3")
    assert page.locator("#chart-shift .js-plotly-plot .scatterlayer .trace").count() >= 10
    page.wait_for_timeout(500)  # let Plotly finish its transitions before the picture
    page.screenshot(path=SHOTS / "charts.png", full_page=True)
    open_tab(page, "System")
    system = page.locator("#system").inner_text()
    assert "lite" in system and "news" in system and "retrieve" in system and "rerank" in system
    open_tab(page, "Recommendations")


def test_not_interested_removes_the_card_and_reset_restores_it(page):
    run_query(page, "Apple launch event")
    first = page.locator("#results .news-card").first
    news_id = first.get_attribute("data-news-id")
    clicked = time.perf_counter()
    first.locator("button[data-action=dislike]").click()
    page.locator(f'#results .news-card[data-news-id="{news_id}"]').wait_for(state="detached", timeout=30_000)
    report("not interested -> refreshed cards", time.perf_counter() - clicked)
    assert page.locator("#results .news-card").count() >= 10
    assert "1 hidden" in page.locator("#results .results-note").inner_text()
    page.click("#reset")
    page.locator(f'#results .news-card[data-news-id="{news_id}"]').wait_for(timeout=30_000)
    assert page.locator("#results .results-note").count() == 0


def test_xss_title_renders_as_text(page):
    run_query(page, "Stadium lights fail during derby")
    card = page.locator("#results .news-card", has_text="Stadium lights fail")
    card.first.wait_for()
    title = card.first.locator(".card-title")
    assert title.inner_text().strip() == XSS_TITLE and title.is_visible()
    assert page.locator('#results img[src="x"]').count() == 0
    assert page.evaluate("() => document.querySelectorAll('[onerror]').length") == 0
    open_tab(page, "Charts")
    page.wait_for_selector("#chart-shift .js-plotly-plot")
    open_tab(page, "Side by side")
    assert page.locator("#side-by-side .side-title", has_text="<img src=x").count() >= 1
    open_tab(page, "Recommendations")
    page.wait_for_timeout(300)
    assert page.dialogs == []  # no alert() ran anywhere


def test_relevance_judgment_is_stored(page, server):
    import sqlite3

    run_query(page, "Apple launch event")
    card = page.locator("#results .news-card").first
    news_id = card.get_attribute("data-news-id")
    card.locator("button[data-action=relevant]").click()
    page.get_by_text("Judgment saved").first.wait_for(timeout=30_000)
    with sqlite3.connect(server[2] / "judgments.sqlite") as db:
        rows = db.execute("SELECT config, relevant FROM judgments WHERE news_id = ?", (news_id,)).fetchall()
    assert any(config.startswith("rerank:") and relevant == 1 for config, relevant in rows)
    assert page.locator(f'#results .news-card[data-news-id="{news_id}"]').count() == 1  # judging keeps the card


def test_language_toggle(page):
    page.locator("#language label", has_text="中文").click()
    try:
        page.wait_for_function("() => document.querySelector('#run').innerText.includes('推荐')", timeout=30_000)
        page.get_by_role("tab", name="并排对比").wait_for(timeout=10_000)
        page.locator("#results .card-action", has_text="多推荐类似").first.wait_for(timeout=10_000)  # cards too
        page.screenshot(path=SHOTS / "main_zh.png")
    finally:  # the other tests read English labels
        page.locator("#language label", has_text="English").click()
        page.wait_for_function("() => document.querySelector('#run').innerText.includes('Recommend')")
        page.get_by_role("tab", name="Side by side").wait_for(timeout=10_000)
    assert page.dialogs == []


def test_evaluation_tab(page):
    run_query(page, "solid-state battery")
    page.locator("#results .news-card button[data-action=relevant]").first.click()
    page.get_by_text("Judgment saved").first.wait_for(timeout=30_000)
    open_tab(page, "Evaluation")
    if page.get_by_text("The evaluation tab is not installed").count():
        pytest.skip("newsrec/ui/evaluation_tab.py is absent: the page shows a placeholder tab")
    page.get_by_role("button", name="Evaluate").click()
    page.wait_for_selector("#tab-evaluation .js-plotly-plot", timeout=120_000)
    page.get_by_role("button", name="↻ judgments").click()
    page.locator("#tab-evaluation", has_text="rerank:").first.wait_for(timeout=30_000)  # the judgment just made
    page.wait_for_timeout(500)
    page.screenshot(path=SHOTS / "evaluation.png", full_page=True)
    open_tab(page, "Recommendations")
    assert page.dialogs == []
