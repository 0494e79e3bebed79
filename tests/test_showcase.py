"""The showcase readers of issue 9 in lite mode on the demo corpus, with no trained model.

The story sets are written down by id from reading the corpus (assets/demo/news.jsonl), not computed by
the code under test. 老李 (u07) grows apples in Yantai, reads Chinese and English, and is "not interested
in phones and computers"; Daniel (u01) follows EV batteries.
"""

from __future__ import annotations

import numpy as np
import pytest

from newsrec.config import Settings
from newsrec.pipeline import Recommender

# Apple growing: harvests, crop prices, exports, storage, picking robots, pruning, cold stores, cull-fruit
# prices, dwarf high-density orchards, drip fertigation, apple futures, a co-op selling to supermarkets.
APPLE_GROWING = {f"n{i:03d}" for i in (*range(37, 46), *range(177, 183))}
# Farming at large: the above, plus oranges, pears, cotton-field drones, fertiliser, frost in orchards.
FARMING = APPLE_GROWING | {"n065", "n105", "n106", "n107", "n108"}
# Apple the company (launches, headset, revenue, modem chips, AirPods) and other gadgets (phones, earbuds).
APPLE_COMPANY = {"n029", "n030", "n031", "n032", "n033", "n034", "n035", "n036"}
GADGETS = APPLE_COMPANY | {"n062", "n072", "n073", "n081"}
# Stories that quote a purchase price (收购价): Yantai Fuji apples at 3.2 yuan a jin, Gannan navel oranges.
PURCHASE_PRICE = {"n037", "n105"}
# EV and battery technology: cells, sodium-ion, charging, battery plants and recycling.
BATTERY = {f"n{i:03d}" for i in range(1, 15)}
# What the issue saw climb into 老李's For-you feed through "finance is 52% of reading".
BATTERY_RECYCLING, YOUTH_SAVINGS = "n014", "n104"
# The same story in Chinese and English: the opening-night game, the NBA Cup game, Apple's launch, the quake.
BILINGUAL_PAIRS = [("n015", "n016"), ("n025", "n026"), ("n029", "n030"), ("n046", "n047")]
# Box-office stories: two English ones say "box office", two Chinese ones 票房 / 贺岁档; and one that
# only shares a word ("Open-source office suite").
BOX_OFFICE, OFFICE_SUITE = {"n154", "n168", "n155", "n169"}, "n079"
# Battery technology stories outside finance (cells, road tests, gigafactories): an investor's two
# battery funding/factory reads (finance/ev-battery) are no reason for them.
BATTERY_TECHNOLOGY = {item for item in BATTERY if item not in {"n005", "n008", "n014"}}

pytestmark = pytest.mark.slow  # embeds the demo corpus with the real lite model once (~5-20 s on 2 cores)


@pytest.fixture(scope="module")
def recommender(tmp_path_factory) -> Recommender:
    settings = Settings(home=tmp_path_factory.mktemp("showcase_home"), embedder="lite", reranker="lite")
    return Recommender.from_settings(settings)


def ids(recommendations) -> list[str]:
    return [r.item.id for r in recommendations]


def test_apple_grower_searching_in_english_gets_orchards_not_gadgets(recommender):
    result = recommender.recommend("u07", query="apple harvest prices")
    top = ids(result.reranked)
    assert result.query_matched and result.notice == ""
    assert len(set(top[:5]) & APPLE_GROWING) >= 3, top
    assert not set(top[:3]) & APPLE_COMPANY, top


def test_apple_grower_searching_in_chinese_finds_the_purchase_price(recommender):
    result = recommender.recommend("u07", query="苹果收购价格")
    top = ids(result.reranked)
    assert set(top[:3]) & PURCHASE_PRICE, top
    assert not set(top[:5]) & GADGETS, top
    assert "n037" in ids(result.retrieval)[:3]  # 收购价格 matches 收购价 already in the first stage
    # he read the Yantai price story: the card says so, and never calls it "like" itself
    card = next(r for r in result.reranked if r.item.id == "n037")
    assert card.reasons[0].kind == "read" and card.explanation.startswith("already read")
    assert "n037" not in card.matched_history


def test_apple_grower_for_you_is_farming_not_his_categories_share(recommender):
    result = recommender.recommend("u07")
    top = ids(result.reranked)
    read = recommender.profile("u07").read_ids
    assert len(FARMING - read) == 10  # the stories he has not read yet
    assert not set(top) & read, top
    assert len(set(top) & FARMING) >= 5, top  # the target: >= 5 of 10
    assert set(top[:5]) <= FARMING, top
    assert BATTERY_RECYCLING not in top and YOUTH_SAVINGS not in top, top
    assert not set(top[:5]) & GADGETS, top


def test_reasons_claim_an_interest_only_when_the_story_is_close_to_it(recommender):
    """USE finds Chinese texts broadly alike: 老李's filler (a music festival, 双十一, Apple revenue) was
    "close to the interest 果农 · apple · 苹果". A reason claims an interest only for a story of one of
    its topics (issue 18: the interest's reads' subcategories), at the related level or closer."""
    from newsrec.explain import RELATED_FLOOR

    profile = recommender.profile("u07")
    by_label = {interest.label: interest for interest in profile.interests}
    feed = recommender.recommend("u07", k=30).reranked
    claims = {r.item.id: r for r in feed if any(reason.kind == "interest" for reason in r.reasons)}
    for card in claims.values():
        vector = recommender.index.embeddings([card.item.id])[0]
        interest = by_label[next(reason.detail for reason in card.reasons if reason.kind == "interest")]
        assert card.item.subcategory in interest.topics and float(interest.vector @ vector) >= RELATED_FLOOR
    filler = {"n167", "n101", "n032", "n008"}  # music festival, 双十一, Apple revenue, a sodium battery plant
    listed = [r for r in feed if r.item.id in filler]
    assert listed, ids(feed)  # they are still in a long feed, as filler ...
    for card in listed:  # ... and say so, instead of claiming his apple interest
        assert "close to the interest" not in card.explanation, (card.item.id, card.explanation)
        assert {reason.kind for reason in card.reasons} & {
            "weak",
            "outside",
            "new_subject",
            "fresh",
            "category",
            "history",
        }


def test_interest_claim_floor_is_calibrated(recommender):
    """The calibration behind newsrec/explain.py's INTEREST_MATCH: on-topic stories (by the persona rules
    of tests/test_demo_corpus.py) reach it far more often than the rest, and a lower floor lets filler in."""
    from test_demo_corpus import PERSONAS, on_topic

    from newsrec.explain import INTEREST_MATCH

    news_ids = list(recommender.corpus.news)
    vectors = recommender.index.embeddings(news_ids)  # (N, D)
    on, off = [], []
    for user_id, rule in PERSONAS.items():
        profile = recommender.profile(user_id)
        closest = (vectors @ np.stack([i.vector for i in profile.interests]).T).max(axis=1)  # (N,)
        for news_id, cosine in zip(news_ids, closest, strict=True):
            if news_id not in profile.read_ids:
                (on if on_topic(recommender.corpus.news[news_id], rule) else off).append(cosine)
    on, off = np.array(on), np.array(off)
    assert (on >= INTEREST_MATCH).mean() >= 0.5 and (off >= INTEREST_MATCH).mean() <= 0.03
    assert (off >= INTEREST_MATCH - 0.05).mean() > 0.05  # 0.40 would let twice as much through
    apple_interest = recommender.profile("u07").interests[0].vector
    for filler in ("n101", "n032"):  # 双十一 and Apple revenue sit just under the floor for 老李
        vector = recommender.index.embeddings([filler])[0]
        assert INTEREST_MATCH - 0.1 < float(apple_interest @ vector) < INTEREST_MATCH, filler


def test_apple_launch_event_means_the_company_not_the_fruit(recommender):
    """USE puts "Apple launch event" as close to apple wholesale prices as to the MacBook launch, and both
    say "apple"; the full match (the MacBook launch, tech) tells which Apple is meant."""
    result = recommender.recommend("u01", query="Apple launch event")
    retrieval, reranked = ids(result.retrieval), ids(result.reranked)
    assert retrieval[0] == reranked[0] == "n029", (retrieval, reranked)
    assert set(retrieval[:2]) <= APPLE_COMPANY, retrieval  # the first stage still has the fruit 3rd
    assert set(reranked[:3]) <= APPLE_COMPANY, reranked  # what the page shows: it was 2nd


def test_box_office_finds_films_before_an_office_suite(recommender):
    """The phrase "box office" outweighs "office" alone: the Chinese box-office reports come first too."""
    result = recommender.recommend("u09", query="box office")
    for stories in (ids(result.retrieval), ids(result.reranked)):
        assert set(stories[:4]) == BOX_OFFICE, stories
        assert OFFICE_SUITE not in stories or stories.index(OFFICE_SUITE) >= len(BOX_OFFICE), stories


def test_investor_for_you_keeps_to_finance(recommender):
    """Grace (u03) reads markets, earnings and commodities, and two battery funding stories (finance). Battery
    recycling (finance/ev-battery, the newest) is fair; cell tests and gigafactories (autos, tech) come after
    every finance story, if at all."""
    result = recommender.recommend("u03")
    top = ids(result.reranked)
    categories = set(recommender.profile("u03").categories)
    # Her finance stories come first. Nine of her fourteen unread finance stories are farm-gate prices, of which
    # the feed shows two (Settings.new_subject_cap); the slots left after her finance stories are filled from
    # outside it, below every finance card.
    inside = [recommender.corpus.news[i].category in categories for i in top]
    assert inside == sorted(inside, reverse=True) and sum(inside) >= 7, top
    assert not set(top[: sum(inside)]) & BATTERY_TECHNOLOGY, top
    assert BATTERY_RECYCLING in top[:3], top


# Stories about AI at work or AI products (Lena, u10, follows practical AI applications). The picking
# robots (n044) joined with issue 18: its judged set (assets/demo/judgments-dev.jsonl) grades them 2 for
# her, and with freshness off by default no freshness part lifts the AI chip (n069) above them any more.
AI_STORIES = {"n036", "n044", "n067", "n068", "n069", "n070", "n081", "n100"}


def test_ai_reader_for_you_leads_with_ai_not_orchards(recommender):
    """Lena (u10) read two AI farm-drone stories among eight AI ones: the encoder puts every orchard story
    near those two, while "AI" in most of her titles says what she follows (profiles.repeated_terms)."""
    result = recommender.recommend("u10")
    top = ids(result.reranked)
    assert "ai" in recommender.profile("u10").terms
    assert len(set(top[:3]) & AI_STORIES) >= 2, top


def test_tech_reader_for_you_takes_apple_in_the_sense_he_read_it(recommender):
    """Arjun (u06) read Apple launches, its headset and its chips: "apple", repeated in his titles, means the
    company. It lifted orchard stories that share only the word (issue 18: "the tech reader's For-you has
    apple-fruit stories"); now a repeated word counts as far as a story resembles the reads that hold it. At
    most one fruit story is left: the encoder's own closeness, halved for a category he never reads."""
    result = recommender.recommend("u06")
    top = ids(result.reranked)
    assert "apple" in recommender.profile("u06").terms
    assert len(set(top) & APPLE_GROWING) <= 1, top
    assert len(set(top) & (APPLE_COMPANY | GADGETS)) >= 4, top


def test_battery_engineer_gets_battery_stories_for_generic_chinese_words(recommender):
    result = recommender.recommend("u01", query="最新电池技术突破")
    assert set(ids(result.reranked)[:3]) <= BATTERY, ids(result.reranked)
    assert ids(result.retrieval)[0] in BATTERY, ids(result.retrieval)


def test_gibberish_matches_nothing_and_falls_back_to_the_for_you_feed(recommender):
    result = recommender.recommend("u07", query="zxqv blorp")
    assert result.query_matched is False
    assert "zxqv blorp" in result.notice and "For-you" in result.notice
    assert result.query == "zxqv blorp"
    assert ids(result.reranked) == ids(recommender.recommend("u07").reranked)
    assert not any("query" in r.explanation for r in result.reranked)


def test_match_threshold_separates_real_queries_from_gibberish(recommender):
    """The calibration behind the lite embedder's query_scale.floor (newsrec/embedders/multilingual.py)."""
    floor = recommender.embedder.query_scale.floor
    news_ids = list(recommender.corpus.news)
    vectors = recommender.index.embeddings(news_ids)  # (N, D)

    def best(query: str) -> float:
        return float((vectors @ recommender.embedder.embed_queries([query])[0]).max())

    gibberish = ["zxqv blorp", "asdf qwer", "glorp zibble", "kwyjibo", "wibble wobble", "lorem ipsum dolor"]
    elsewhere = ["knitting patterns for beginners", "sourdough bread recipe", "古典吉他指法", "蝴蝶标本收藏"]
    assert max(best(q) for q in gibberish + elsewhere) < floor
    real = {"台风": "n057", "票房": "n155", "sleep": "n120", "flu vaccine": "n118", "Curry injury": "n018"}
    for query, story in real.items():
        cosine = float(vectors[news_ids.index(story)] @ recommender.embedder.embed_queries([query])[0])
        assert cosine >= floor, (query, cosine)
    # The topics the corpus does not cover match nothing at all, so the page says so.
    for query in elsewhere:
        assert recommender.recommend("u01", query=query).query_matched is False, query


def test_the_same_story_in_two_languages_takes_one_slot(recommender):
    feed = recommender.recommend("u02")  # bilingual Lakers and Warriors fan; the NBA Cup game is in both languages
    slots = [{r.item.id, *r.duplicate_ids} for r in feed.reranked]
    assert {"n025", "n026"} in slots, slots
    listed = [news_id for slot in slots for news_id in slot]
    assert len(listed) == len(set(listed))
    for pair in BILINGUAL_PAIRS:
        vectors = recommender.index.embeddings(list(pair))
        assert float(vectors[0] @ vectors[1]) >= recommender.embedder.same_story_cosine, pair


def test_english_query_reads_chinese_reports(recommender):
    result = recommender.recommend("u02", query="Lakers Warriors", k=10)
    languages = {r.item.language for r in result.reranked} | {
        recommender.corpus.news[d].language for r in result.reranked for d in r.duplicate_ids
    }
    assert languages == {"en", "zh"}
    scores = np.array([r.score for r in result.reranked])
    assert (np.diff(scores) <= 1e-12).all()


def test_rank_badges_agree_with_the_retrieval_column_after_a_merged_pair(recommender):
    """u01 "Apple launch event": the launch is in both languages (n029/n030) and takes one retrieval slot, so
    every reranked story's retrieval_rank is the number the retrieval column shows for it, and the rank-shift
    chart draws the same moves as the cards."""
    from newsrec.ui import charts

    result = recommender.recommend("u01", query="Apple launch event")
    slot_of = {news_id: r.rank for r in result.retrieval for news_id in (r.item.id, *r.duplicate_ids)}
    k = len(result.retrieval)
    for rec in result.reranked:
        story = (rec.item.id, *rec.duplicate_ids)
        shown = min((slot_of[i] for i in story if i in slot_of), default=None)
        if shown is None:
            assert rec.retrieval_rank > k, (rec.item.id, rec.retrieval_rank)
        else:
            assert rec.retrieval_rank == shown, (rec.item.id, rec.retrieval_rank, shown)
    fig = charts.rank_shift(result)
    ends = {trace.y[1]: trace.y[0] for trace in fig.data if trace.showlegend is False and trace.y[1] <= k}
    assert ends == {rec.rank: min(rec.retrieval_rank, k + 1) for rec in result.reranked}
