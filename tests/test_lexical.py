"""Tokenizer, BM25 retrieval and reciprocal rank fusion."""

from __future__ import annotations

import time

import pytest

from newsrec.lexical import LexicalIndex, rrf, tokenize
from newsrec.types import NewsItem


def test_tokenize_english_lowercases_and_drops_stopwords_and_punctuation():
    assert tokenize("The Biden administration's NEW border policy, explained!") == [
        "biden",
        "administration",
        "border",
        "policy",
        "explained",
    ]
    assert tokenize("Covid-19 cases rose 12% in 2024") == ["covid", "19", "cases", "rose", "12", "2024"]
    assert tokenize("") == []
    assert tokenize("... !!! the of and") == []


def test_tokenize_chinese_segments_words_that_match_across_texts():
    query = tokenize("最新电池技术突破")
    document = tokenize("固态电池技术取得重大进展")
    assert query == ["最新", "电池", "技术", "突破"]
    assert {"电池", "技术"} <= set(query) & set(document)
    assert "的" not in tokenize("我们的电池")  # zh stopword


def test_tokenize_mixed_and_full_width_text():
    # Full-width Latin folds to ASCII; Latin and Han runs split apart.
    assert tokenize("华为发布ＡＩ芯片Mate60") == ["华为", "发布", "ai", "芯片", "mate60"]


def test_bigrams_are_added_only_when_asked():
    words = tokenize("新能源汽车销量")
    with_bigrams = tokenize("新能源汽车销量", bigrams=True)
    assert "汽车" not in words  # jieba keeps 汽车销量 as one word ...
    assert "汽车" in with_bigrams  # ... which character bigrams recover
    assert with_bigrams[: len(words)] == words


def _items(rows: dict[str, tuple[str, str]]) -> list[NewsItem]:
    return [NewsItem(id=news_id, title=title, body=body) for news_id, (title, body) in rows.items()]


CORPUS = {
    "zh-battery": ("宁德时代发布新一代固态电池", "固态电池技术取得突破，能量密度提升"),
    "zh-cars": ("新能源汽车销量创历史新高", "比亚迪领跑市场"),
    "zh-football": ("阿根廷夺得世界杯冠军", "梅西圆梦卡塔尔"),
    "zh-rates": ("央行宣布降准", "释放长期资金"),
    "en-battery": ("Solid-state battery startup raises funds", "A new cell chemistry promises longer range."),
    "en-border": ("Governor tours southern border", "Migrant crossings fell in March."),
    "en-football": ("Argentina win the World Cup", "Messi lifts the trophy in Qatar."),
    "en-rates": ("Fed holds interest rates", "Inflation cooled slightly."),
}


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(_items(CORPUS))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("最新电池技术突破", "zh-battery"),
        ("汽车销量", "zh-cars"),  # matched through bigrams (jieba: 汽车销量 is one word)
        ("世界杯冠军", "zh-football"),
        ("battery technology", "en-battery"),
        ("migrants at the border", "en-border"),
        ("Messi World Cup", "en-football"),
        ("interest rates inflation", "en-rates"),
    ],
)
def test_bm25_ranks_the_obvious_document_first(index, query, expected):
    results = index.search(query, 3)
    assert results, query
    assert results[0][0] == expected
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


def test_search_edge_cases(index):
    assert index.search("", 5) == []
    assert index.search("the of 的", 5) == []  # stopwords only
    assert index.search("zzzunknownword", 5) == []
    assert index.search("battery", 0) == []
    assert len(index.search("battery 电池 border 冠军", 100)) <= len(CORPUS)  # n larger than the corpus is fine
    assert len(index.search("battery 电池 border 冠军", 2)) == 2


def test_empty_corpus_and_termless_items_search_to_nothing():
    assert LexicalIndex.build([]).search("battery", 5) == []
    assert LexicalIndex.build([NewsItem(id="a", title="!!!")]).search("battery", 5) == []


def test_rrf_matches_hand_computed_scores():
    # k=60: a is 1st and 2nd -> 1/61 + 1/62; b is 2nd and 1st -> same; c is 3rd in one -> 1/63; d only 3rd.
    fused = rrf([["a", "b", "c"], ["b", "a", "d"]], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["c"] == pytest.approx(1 / 63)
    assert scores["d"] == pytest.approx(1 / 63)
    assert [news_id for news_id, _ in fused] == ["a", "b", "c", "d"]  # ties keep first-seen order
    # An id found by both retrievers beats one ranked first by only one of them.
    assert [i for i, _ in rrf([["x", "y"], ["z", "y"]], k=1)][0] == "y"  # 1/3+1/3 > 1/2


def test_rrf_accepts_scored_pairs_and_ignores_duplicates():
    assert rrf([[("a", 9.0), ("b", 1.0)]], k=0) == [("a", 1.0), ("b", 0.5)]
    assert rrf([["a", "a", "b"]], k=0) == [("a", 1.0), ("b", 1 / 3)]
    assert rrf([]) == []


def test_build_is_fast_for_ten_thousand_items():
    words = [
        "border",
        "policy",
        "election",
        "battery",
        "market",
        "football",
        "climate",
        "refugees",
        "court",
        "minister",
    ]
    items = [
        NewsItem(id=f"n{i}", title=f"{words[i % 10]} {words[(i * 7) % 10]} story {i}", body=" ".join(words) * 3)
        for i in range(10_000)
    ]
    start = time.perf_counter()
    index = LexicalIndex.build(items)
    assert time.perf_counter() - start < 10  # typically ~1.5 s on the 2-core dev box
    assert index.search("story 1234", 1)[0][0] == "n1234"
