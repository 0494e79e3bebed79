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

# Apple growing: harvests, crop prices, exports, storage, picking robots, pruning.
APPLE_GROWING = {"n037", "n038", "n039", "n040", "n041", "n042", "n043", "n044", "n045"}
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
    unread_farming = FARMING - read
    # The issue asks for >= 5 farming stories of 10; the demo corpus has only these 4 he has not read.
    assert unread_farming == {"n043", "n044", "n045", "n108"}
    assert len(set(top[:5]) & unread_farming) >= 3, top
    assert set(top) >= unread_farming, top
    assert BATTERY_RECYCLING not in top and YOUTH_SAVINGS not in top, top
    assert not set(top[:5]) & GADGETS, top


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
