"""Tokenizer, BM25 retrieval and reciprocal rank fusion."""

from __future__ import annotations

import time

import pytest

from newsrec.lexical import LexicalIndex, tokenize
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
    assert query == ["电池", "技术", "突破"]  # 最新 ("latest") asks for recency, not a topic: a stopword
    assert "技术" in set(query) & set(document)
    assert "固态电池" in document  # a domain word stays whole (the synonym table's words); BM25's bigrams hold 电池
    assert "电池" in tokenize("固态电池技术取得重大进展", bigrams=True)
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
    results = index.match(query, 3)
    assert results, query
    assert results[0][0] == expected
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


def test_search_edge_cases(index):
    assert index.match("", 5) == []
    assert index.match("the of 的", 5) == []  # stopwords only
    assert index.match("zzzunknownword", 5) == []
    assert index.match("battery", 0) == []
    assert len(index.match("battery 电池 border 冠军", 100)) <= len(CORPUS)  # n larger than the corpus is fine
    assert len(index.match("battery 电池 border 冠军", 2)) == 2


def test_empty_corpus_and_termless_items_search_to_nothing():
    assert LexicalIndex.build([]).match("battery", 5) == []
    assert LexicalIndex.build([NewsItem(id="a", title="!!!")]).match("battery", 5) == []


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
    # CPU seconds of this process, which other processes' load does not inflate: at load 12.7 on the 2-core dev box
    # the first build took 1.95 s of CPU but 7.75 s of wall clock, close to the old 10 s wall budget.
    wall, cpu = time.perf_counter(), time.process_time()
    index = LexicalIndex.build(items)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert cpu < 10 and wall < 120, f"{cpu:.1f} CPU seconds, {wall:.1f} s wall"  # typically ~1-2 CPU seconds
    assert index.match("story 1234", 1)[0][0] == "n1234"


# --- IDF-weighted coverage (LexicalIndex.match) ------------------------------------------------------------

COVERAGE_CORPUS = {
    "yantai": ("烟台苹果迎来丰收，红富士收购价每斤3.2元", "果农说今年收购价走势平稳"),
    "headset": ("苹果头显登陆中国市场", "国行售价23999元，价格高于预期"),
    "curry": ("库里三分命中数突破4300个", "继续刷新纪录"),
    "sales": ("国产游戏首周销量突破500万份", "玩家口碑不错"),
    "traffic": ("景区单日游客量突破8万人次", "门票提前售罄"),
    "battery": ("固态电池装车路测启动", "续航表现稳定"),
    "gold": ("Gold prices climb on central bank buying", "Bullion rose for a third week."),
    "cars": ("Used car prices stabilise", "Dealers report steady demand."),
    "pears": ("Pear growers face low prices", "A clean crop meets weak demand."),
    "harvest": ("Washington apple harvest set to top 141 million boxes", "Growers expect strong prices."),
}


@pytest.fixture(scope="module")
def coverage_index() -> LexicalIndex:
    return LexicalIndex.build(_items(COVERAGE_CORPUS))


def test_a_compound_query_matches_its_shorter_form(coverage_index):
    # jieba keeps 收购价格 whole and the item says 收购价: the character bigrams 收购/购价 carry the match.
    assert "收购价格" in tokenize("苹果收购价格")
    hits = dict(coverage_index.match("苹果收购价格"))
    assert max(hits, key=hits.get) == "yantai"
    assert hits["yantai"] - hits["headset"] > 0.2  # the headset shares 苹果 and 价格, not 收购
    assert 0 < hits["yantai"] <= 1


def test_generic_words_do_not_decide_the_ranking(coverage_index):
    # 突破 is in three items, 电池 in one: one battery item outranks every 突破 item.
    hits = coverage_index.match("电池技术突破")
    assert hits[0][0] == "battery"
    # "prices" is in four items, "harvest" in one.
    hits = coverage_index.match("apple harvest prices")
    assert hits[0][0] == "harvest" and hits[0][1] > 2 * dict(hits)["gold"]


def test_coverage_edge_cases(coverage_index):
    assert coverage_index.match("") == [] and coverage_index.match("zxqv blorp") == []
    assert coverage_index.match("2026 141") == []  # numbers alone are not a topic
    only_partly = dict(coverage_index.match("harvest zxqv"))  # an unknown word counts as missed, not ignored
    assert 0 < only_partly["harvest"] < dict(coverage_index.match("harvest"))["harvest"]
    assert len(coverage_index.match("prices", 2)) == 2
    assert LexicalIndex.build([]).match("prices") == []


# --- phrases: words side by side beat the same words apart --------------------------------------------------

PHRASE_CORPUS = {
    "film": ("Space drama tops the box office", "The film opened to $86 million."),
    "suite": ("Open-source office suite passes 100 million users", "Downloads of the box set of tools rose."),
    "pears": ("Pear prices fall", "Growers ship fewer boxes."),
    "gold": ("Gold climbs", "Central banks keep buying."),
}


def test_word_bigrams_are_phrase_terms_only_between_adjacent_words():
    assert "box office" in tokenize("tops the box office", bigrams=True)
    assert "box office" in tokenize("a box-office record", bigrams=True)
    assert "box office" not in tokenize("a box. Office", bigrams=True)  # a full stop ends the phrase
    assert "box office" not in tokenize("box of office", bigrams=True)  # a stopword between: not a phrase
    assert "box office" not in tokenize("tops the box office")  # keyword display keeps words only


def test_a_phrase_outweighs_its_words_scattered():
    index = LexicalIndex.build(_items(PHRASE_CORPUS))
    hits = dict(index.match("box office"))
    assert hits["film"] > 0.9 and hits["suite"] < 0.7 * hits["film"]
    # a phrase no item has costs nothing: it is left out of the query's terms, like an unseen CJK bigram
    # (terms are English stems: "box offic", "bank")
    assert "box offic" in index.query_terms("box office")
    assert set(index.query_terms("gold banks")) == {"gold", "bank"}
    assert dict(index.match("gold banks"))["gold"] == pytest.approx(1.0)


# --- how people type (issue 18): word forms, compounds, abbreviations, Chinese domain words, common words -------

TYPING_CORPUS = {
    "charging": ("Cell passes 12-minute fast-charging test", "The pack charged to 80 percent in the cold."),
    "cruise": ("Port to charge cruise passengers a day fee", "Visitors will pay four euros each."),
    "earnings": ("Chipmaker posts record quarterly earnings", "Revenue rose on data-centre orders."),
    "ev": ("Electric vehicle sales rise in October", "Battery cars took a quarter of the market."),
    "gold": ("Gold climbs past $4,800 an ounce", "Central banks keep buying bullion; the price rose."),
    "streaming": ("Streaming price war cuts plans to $4.99", "Two services cut the price of ad tiers."),
    "pears": ("Pear growers face low prices", "A clean crop meets weak demand."),
    "ai-health": ("AI model spots lung nodules in scans", "Hospitals tested the medical imaging tool."),
    "ai-chips": ("AI chip maker ships inference accelerators", "Data-centre demand keeps growing."),
}


@pytest.fixture(scope="module")
def typing_index() -> LexicalIndex:
    return LexicalIndex.build(_items(TYPING_CORPUS))


def test_english_word_forms_match_through_stems(typing_index):
    assert tokenize("earnings earning", stem=True) == ["earn", "earn"]
    assert tokenize("charge charging charged", stem=True) == ["charg", "charg", "charg"]
    assert dict(typing_index.match("earning"))["earnings"] > 0.9
    assert "charging" in dict(typing_index.match("charge"))


@pytest.mark.parametrize("query", ["fast charge", "fast-charging", "fast charging", "fastcharging"])
def test_hyphens_and_run_together_compounds_match_alike(typing_index, query):
    scored = typing_index.score(query)
    covers = {news_id for news_id, c in zip(typing_index.ids, scored.covers, strict=True) if c}
    assert covers == {"charging"}, (query, covers)  # "to charge cruise passengers" shares only "charge"


def test_abbreviations_and_synonyms_reach_the_spelled_out_form(typing_index):
    assert typing_index.match("EV")[0][0] == "ev"  # the item says "electric vehicle"
    ai = dict(typing_index.match("artificial intelligence"))
    assert set(ai) == {"ai-health", "ai-chips"}


def test_one_shared_common_word_does_not_cover_the_query(typing_index):
    scored = typing_index.score("gold price")
    covers = {news_id for news_id, c in zip(typing_index.ids, scored.covers, strict=True) if c}
    assert covers == {"gold"}  # streaming and pears share only "price"
    both = typing_index.score("AI medical")
    covers = {news_id for news_id, c in zip(typing_index.ids, both.covers, strict=True) if c}
    assert covers == {"ai-health"}  # two terms of like weight: both are needed


def test_chinese_domain_words_stay_whole():
    assert "人工智能" in tokenize("人工智能辅助诊断")
    assert "固态电池" in tokenize("固态电池装车路测")
    assert "双十一" in tokenize("双十一全网成交额")  # not the broken piece 双十


def test_a_chinese_compound_no_item_has_splits_into_words_that_can_match():
    index = LexicalIndex.build(_items({"gold": ("黄金走高", "央行持续买入"), "rice": ("大米价格上涨", "产量下降")}))
    labels = [concept.label for concept in index.concepts("黄金价格")]
    assert labels == ["黄金", "价格"]
    covers = {news_id for news_id, c in zip(index.ids, index.score("黄金价格").covers, strict=True) if c}
    assert covers == {"gold"}


def test_a_synonym_no_story_uses_is_a_missed_word_not_a_crash():
    """A corpus holding none of a synonym group's phrases gives that query concept no alternatives; scoring a
    query through it must not fail (bench load's synthetic ingests met this as 500s)."""
    items = [NewsItem(id=f"x{i}", title=f"Synthetic story number {i} about widgets", language="en") for i in range(20)]
    index = LexicalIndex.build(items)
    for query in ("EV charging", "AI", "fast charge", "人工智能 医疗", "widgets price"):
        coverage = index.score(query).coverage
        assert coverage.shape == (20,)
    assert index.score("widgets").coverage.max() > 0 and index.score("EV charging").coverage.max() == 0


def _stories(prefix: str, n: int) -> list[NewsItem]:
    topics = ["battery", "football", "harvest", "election", "rates", "vaccine"]
    return [
        NewsItem(
            id=f"{prefix}{i}",
            title=f"{topics[i % 6].title()} report {prefix}{i} on 固态电池",
            body=f"A {topics[(i * 5) % 6]} story, number {i}, about {topics[i % 6]} and central bank rates.",
            category=topics[i % 6],
        )
        for i in range(n)
    ]


def test_a_rebuild_after_an_append_tokenizes_only_new_or_changed_items_and_equals_a_fresh_build(monkeypatch):
    """The app rebuilds its lexical index on every switch to another writer's state (newsrec/follow.py): only the
    appended and changed stories are tokenized again, and the index is the one a fresh build gives."""
    import newsrec.lexical as lexical

    old, appended = _stories("a", 40), _stories("b", 10)
    changed = NewsItem(id="a3", title="Harvest festival moves to the river", body=old[3].body, category="harvest")
    now = [*old[:3], changed, *old[4:], *appended]
    LexicalIndex.build(old)
    calls = []
    real = lexical._document_terms
    monkeypatch.setattr(lexical, "_document_terms", lambda item, **kw: calls.append(item.id) or real(item, **kw))
    rebuilt = LexicalIndex.build(now)
    assert sorted(calls) == sorted(["a3", *(item.id for item in appended)])  # the old code: all 50 again
    lexical._forget_item_terms()
    fresh = LexicalIndex.build(now)
    assert len(calls) == 11 + len(now)  # the fresh build tokenized everything
    assert rebuilt.ids == fresh.ids and rebuilt._df == fresh._df
    assert {t: list(rows) for t, rows in rebuilt._heads.items()} == {t: list(rows) for t, rows in fresh._heads.items()}
    for query in ("harvest festival", "battery rates", "固态电池", "b7"):
        assert rebuilt.match(query, 10) == fresh.match(query, 10)
    assert rebuilt.match("river", 3)[0][0] == "a3"  # the changed story is found by its new words
