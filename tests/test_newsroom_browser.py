"""The Newsroom tab in a real browser: Debian's chromium driven by Playwright against `python app.py`.

One app process (lite mode, the demo corpus, fresh NEWSREC_HOME so no rules exist yet) serves the module, as in
test_app_browser.py, whose server and browser fixtures this module reuses. The tests run in order and build on
each other like an editor's session: pin a story and see it on a reader's card, block a label for a segment, cap
a category, preview draft against live on the persona panel, publish, roll back, switch to 中文, open a phone.
Set NEWSREC_SCREENSHOTS=docs/screenshots to refresh the README's pictures (newsroom.png, newsroom_zh.png).
"""

# ruff: noqa: F811  (the server and browser fixtures come from test_app_browser and are requested by name)
from __future__ import annotations

import pytest
from test_app_browser import (  # noqa: F401  (fixtures)
    CJK,
    FRESH,
    browser,
    latin_only,
    mark_stale,
    open_page,
    open_tab,
    server,
    shoot,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PIN_STORY = "n063"  # a tech story; Kevin Zhang (u02) reads NBA news, so it is not in his feed on its own


@pytest.fixture(scope="module")
def page(server, browser):
    page = open_page(browser, server[0] + "?user=u02")
    page.locator("#results .news-card").first.wait_for(timeout=180_000)
    open_tab(page, "Newsroom")
    page.locator("#nr-badges .nr-badges").wait_for(timeout=30_000)
    yield page
    page.close()


def pick(page, elem_id: str, option: str) -> None:
    """Choose `option` (its label, or a part of it) in the Gradio dropdown `#elem_id`."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill("")
    box.press_sequentially(option)  # long lists show only their first options until filtered by typing
    page.get_by_role("option", name=option).first.click()


def choose(page, elem_id: str, label: str) -> None:
    page.locator(f"#{elem_id} label", has_text=label).first.click()


def status(page) -> str:
    page.locator("#nr-status p").first.wait_for(timeout=30_000)
    return page.locator("#nr-status").inner_text()


def save_rule(page, expected: str) -> None:
    page.evaluate("() => { const s = document.querySelector('#nr-status'); if (s) s.dataset.before = s.innerText; }")
    page.click("#nr-save")
    page.locator("#nr-status", has_text=expected).wait_for(timeout=30_000)


def rows(page, elem_id: str) -> list[list[str]]:
    """The visible rows of a Gradio table (it also keeps a hidden copy for measuring), cell texts."""
    return page.evaluate(
        """(id) => [...document.querySelectorAll(`#${id} [role=row].virtual-row`)]
          .map((row) => [...row.querySelectorAll('[role=gridcell]')].map((cell) => cell.innerText.trim()))""",
        elem_id,
    )


def draft_ids(page) -> list[str]:
    return [row[0] for row in rows(page, "nr-draft")]


def feed(page, rules: str) -> list[str]:
    """The reader's feed with the given rule set (the Controls radio), as news ids in order."""
    open_tab(page, "Results")
    if not page.locator("#feed-rules").is_visible():
        page.locator("#controls").get_by_text("Controls").first.click()
    page.locator("#feed-rules label", has_text=rules).first.click()
    mark_stale(page)
    page.click("#run")
    page.locator(f"{FRESH} .news-card").first.wait_for(timeout=60_000)
    return [c.get_attribute("data-news-id") for c in page.locator("#results .news-card").all()]


def test_pin_through_the_form_shows_on_the_readers_card(page):
    assert page.locator("#nr-badges [data-live-version='0']").count() == 1  # nothing published yet
    pick(page, "nr-kind", "pin at a slot")
    page.locator("#nr-slot").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#nr-weight").is_visible()
    pick(page, "nr-story", PIN_STORY)
    page.locator("#nr-slot input[type=number]").fill("2")
    page.locator("#nr-author input, #nr-author textarea").fill("editor")
    page.locator("#nr-note input, #nr-note textarea").fill("must-read explainer")
    save_rule(page, "Saved rule pin-1 to the draft.")
    page.locator("#nr-draft", has_text="pin-1").wait_for(timeout=10_000)
    assert page.locator("#nr-badges .nr-badge.draft.changed").count() == 1
    ids = feed(page, "draft")
    assert ids[1] == PIN_STORY
    card = page.locator(f'#results .news-card[data-news-id="{PIN_STORY}"]')
    assert "Pinned at slot 2 by the editors (rule pin-1)." in card.inner_text()  # the card says which rule acted
    assert PIN_STORY not in feed(page, "live")  # not published: live readers do not see it
    open_tab(page, "Newsroom")


def test_block_a_label_for_a_segment_and_cap_a_category(page):
    pick(page, "nr-kind", "block")
    choose(page, "nr-target", "sensitivity label")
    page.locator("#nr-label").wait_for(state="visible", timeout=10_000)  # the kind's fields, and only them
    page.locator("#nr-story").wait_for(state="hidden", timeout=10_000)
    page.locator("#nr-label input").fill("legal")
    page.keyboard.press("Enter")
    choose(page, "nr-scope", "a segment")
    page.locator("#nr-seg-lang").wait_for(state="visible", timeout=10_000)
    pick(page, "nr-seg-lang", "zh")
    save_rule(page, "Saved rule block-1 to the draft.")
    pick(page, "nr-kind", "quota")
    choose(page, "nr-quota-mode", "at most k per category")
    page.locator("#nr-category").wait_for(state="visible", timeout=10_000)
    pick(page, "nr-category", "sports")
    page.locator("#nr-quota-k input").fill("2")
    choose(page, "nr-scope", "all readers")
    save_rule(page, "Saved rule quota-1 to the draft.")
    assert draft_ids(page) == ["block-1", "pin-1", "quota-1"]
    what = page.locator("#nr-draft").inner_text()
    assert "block sensitivity label: legal" in what and "quota: ≤ 2 × sports" in what
    ids = feed(page, "draft")  # Kevin reads sports: the cap holds on his feed
    sports = [c for c in page.locator("#results .news-card .cat").all_inner_texts() if "sports" in c]
    assert len(sports) <= 2 and len(ids) >= 10
    open_tab(page, "Newsroom")


def test_preview_draft_against_live_on_the_persona_panel(page):
    choose(page, "nr-panel", "the personas")
    choose(page, "nr-compare", "draft vs live")
    page.click("#nr-run")
    page.locator("#nr-summary", has_text="readers").wait_for(timeout=120_000)
    page.wait_for_selector("#nr-chart-0 .js-plotly-plot", timeout=30_000)
    assert len(rows(page, "nr-per-reader")) == 10  # the ten personas
    assert len(rows(page, "nr-per-story")) >= 1
    readers = rows(page, "nr-per-reader")
    kevin = next(row for row in readers if row[0].startswith("Kevin"))
    assert int(kevin[4]) >= 1  # "# left": the cap on sports moved stories out of his feed
    header = page.locator("#nr-per-reader [role=columnheader]:visible", has_text="# left").first
    header.hover()
    header.locator("button[aria-label='Open cell menu']").click(force=True)
    page.get_by_role("menuitem", name="Sort descending").click()  # the table sorts by any column
    page.wait_for_timeout(500)
    counts = [int(row[4]) for row in rows(page, "nr-per-reader")]
    assert counts == sorted(counts, reverse=True) and counts != [int(r[4]) for r in readers]
    with page.expect_download() as download:
        page.click("#nr-export-html")
    assert download.value.suggested_filename.endswith(".html")
    page.wait_for_timeout(500)
    page.locator("#nr-preview").scroll_into_view_if_needed()
    shoot(page, "newsroom.png", full_page=True)


def test_publish_then_roll_back(page):
    page.locator("#nr-author input, #nr-author textarea").fill("editor")
    page.click("#nr-publish")
    page.locator("#nr-status", has_text="Published v1.").wait_for(timeout=30_000)
    page.locator("#nr-badges [data-live-version='1']").wait_for(timeout=10_000)
    assert feed(page, "live")[1] == PIN_STORY  # published: live feeds show the pin
    open_tab(page, "Newsroom")
    pick(page, "nr-pick", "pin-1")
    page.click("#nr-remove")
    page.locator("#nr-status", has_text="Removed rule pin-1").wait_for(timeout=30_000)
    page.click("#nr-publish")
    page.locator("#nr-status", has_text="Published v2.").wait_for(timeout=30_000)
    pick(page, "nr-version", "v1 ·")
    page.locator("#nr-diff [data-version='1'] li.added[data-rule='pin-1']").wait_for(timeout=30_000)
    page.click("#nr-rollback")
    page.locator("#nr-status", has_text="Rolled back: v3 is live, with the rules of v1.").wait_for(timeout=30_000)
    page.locator("#nr-badges [data-live-version='3']").wait_for(timeout=10_000)
    assert feed(page, "live")[1] == PIN_STORY
    open_tab(page, "Newsroom")


def test_chinese_shows_the_tab_in_chinese(page):
    page.locator("#language label", has_text="中文").click()
    try:
        page.get_by_role("tab", name="编辑台").wait_for(timeout=30_000)
        open_tab(page, "编辑台")
        page.locator("#nr-save", has_text="保存到草稿").wait_for(timeout=30_000)
        page.locator("#nr-badges", has_text="线上").wait_for(timeout=30_000)
        page.locator("#nr-draft [role=columnheader]", has_text="类型").first.wait_for(timeout=30_000)
        texts = page.evaluate(
            """() => [...document.querySelectorAll(`#newsroom label span, #newsroom button,
              #newsroom [role=columnheader], #newsroom .nr-badge b, #newsroom [data-testid=block-info],
              #newsroom .prose p`)]
              .filter((el) => el.getBoundingClientRect().width > 0)
              .map((el) => el.innerText.trim()).filter((x) => x)"""
        )
        assert not latin_only(texts), latin_only(texts)
        assert any(CJK.search(x) for x in texts)
        page.wait_for_timeout(500)
        shoot(page, "newsroom_zh.png", full_page=True)
    finally:
        page.locator("#language label", has_text="English").click()
        page.get_by_role("tab", name="Newsroom").wait_for(timeout=30_000)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_phone_layout_has_no_horizontal_overflow(browser, server, lang):
    url = server[0] + f"?tab=newsroom&rules=v1&panel=sample:5&compare=reranked:retrieval&lang={lang}"
    page = open_page(browser, url, width=390, height=844)
    try:
        page.locator("#nr-badges .nr-badges").wait_for(timeout=60_000)
        page.wait_for_timeout(800)
        assert page.locator("#tab-newsroom").is_visible()  # the link opened the tab
        assert page.locator("#nr-sample-n input").input_value() == "5"
        overflowing = page.evaluate(
            """() => [...document.querySelectorAll('#newsroom .block, #newsroom button, #newsroom input')]
              .filter((el) => el.getBoundingClientRect().width > 0 && el.getBoundingClientRect().right > 390)
              .filter((el) => !el.closest('[data-testid=dataframe] .table-wrap, .js-plotly-plot'))
              .map((el) => `${el.tagName}.${el.className} in #${el.closest('[id]')?.id}`)"""
        )
        assert overflowing == []  # every control fits the 390 px screen
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        shoot(page, f"newsroom_mobile_{lang}.png", full_page=True)
    finally:
        page.close()


def test_deep_link_opens_a_version_and_a_panel(browser, server):
    page = open_page(browser, server[0] + "?tab=newsroom&rules=v2&panel=segment:lang=zh&compare=reranked:retrieval")
    try:
        page.locator("#nr-diff [data-version='2']").wait_for(timeout=60_000)
        assert "v2" in page.locator("#nr-version input").input_value()
        assert page.locator("#nr-panel input[value=segment]").is_checked()
        assert page.locator("#nr-compare input[value='reranked:retrieval']").is_checked()
        link = page.locator("#nr-badges a.nr-link").get_attribute("href")
        assert "rules=v2" in link and "panel=segment" in link  # the badges carry the view link
    finally:
        page.close()
