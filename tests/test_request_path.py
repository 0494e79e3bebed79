"""The request path does no work that grows with the corpus (issue 21): spies on what a request touches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import HashingEmbedder

from newsrec.config import Settings
from newsrec.data.corpus import Corpus, format_time, save_corpus
from newsrec.pipeline import Filters, Recommender
from newsrec.rerankers.lite import LiteReranker
from newsrec.types import HistoryEntry, NewsItem, User

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
TOPICS = ["battery charging", "lakers warriors", "apple iphone", "orchard harvest", "election senate", "storm flood"]
STORIES = 240


class CountingNews(dict):
    """The corpus's news dict, counting whole passes over it (lookups by id stay free)."""

    passes = 0

    def __iter__(self):
        CountingNews.passes += 1
        return super().__iter__()

    def values(self):
        CountingNews.passes += 1
        return super().values()

    def items(self):
        CountingNews.passes += 1
        return super().items()

    def keys(self):
        CountingNews.passes += 1
        return super().keys()


class CountingIds(list):
    """The lexical index's id list, counting whole passes over it."""

    passes = 0

    def __iter__(self):
        CountingIds.passes += 1
        return super().__iter__()


def _items() -> list[NewsItem]:
    items = []
    for i in range(STORIES):
        topic = TOPICS[i % len(TOPICS)]
        items.append(
            NewsItem(
                id=f"n{i:03d}",
                title=f"{topic} update {i}",
                body=f"{topic} report, the weekly report number {i}",  # "report": a word every story has
                category=topic.split()[0],
                language="en",
                published_at=NOW - timedelta(hours=(i * 7919) % STORIES),  # dates out of corpus order
            )
        )
    return items


@pytest.fixture
def recommender(newsrec_home):
    settings = Settings.from_env(corpus="spied", embedder="lite", reranker="lite")
    corpus = Corpus(name="spied", root=settings.corpus_dir("spied"), news={item.id: item for item in _items()})
    reads = ["n000", "n006", "n012", "n001", "n007"]
    corpus.users = {
        "fan": User("fan", "Fan", "", [HistoryEntry(n, NOW - timedelta(hours=9 - i)) for i, n in enumerate(reads)]),
        "new": User("new", "Newcomer"),
    }
    save_corpus(corpus)
    embedder = HashingEmbedder()
    rec = Recommender.from_settings(settings, embedder=embedder, reranker=LiteReranker(embedder))
    rec.reranker.lexical = rec.lexical  # as `get_reranker` wires it: the corpus's lexical index (IDF weights)
    rec.corpus.news = CountingNews(rec.corpus.news)
    rec.lexical.ids = CountingIds(rec.lexical.ids)
    rec.profile("fan"), rec.profile("new")  # profiles are per reader, built once; not what is measured here
    return rec


def _passes() -> tuple[int, int]:
    return CountingNews.passes, CountingIds.passes


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"user_id": "fan"},  # For-you feed: interests + trending
        {"user_id": "new"},  # no history: the newest stories (a sort of the whole corpus per request before)
        {"user_id": "new", "filters": Filters(categories=["storm"])},
        {"user_id": "fan", "query": "harvest report"},  # lexical + dense; the lite reranker's query part
    ],
)
def test_a_request_never_passes_over_the_whole_corpus(recommender, request_kwargs):
    recommender.recommend(**request_kwargs)  # first request: lazy state (trending order, newest order) is built
    before = _passes()
    for _ in range(3):
        result = recommender.recommend(**request_kwargs)
        assert result.reranked
    assert _passes() == before


def test_cold_start_order_is_the_newest_first_as_a_full_sort_gives(recommender):
    result = recommender.recommend("new", k=8, candidates=8)
    items = sorted(_items(), key=lambda item: format_time(item.published_at) or "", reverse=True)
    assert [c.item.id for c in result.retrieval] == [item.id for item in items[:8]]
    storms = [item.id for item in items if item.category == "storm"][:5]
    filtered = recommender.recommend("new", k=5, candidates=5, filters=Filters(categories=["storm"]))
    assert [c.item.id for c in filtered.retrieval] == storms


def test_a_query_scores_the_corpus_once_per_request(recommender, monkeypatch):
    calls: list[list[str]] = []
    bm25 = recommender.lexical._bm25
    original = bm25.get_scores

    def counted(tokens, *args, **kwargs):
        calls.append(list(tokens))
        return original(tokens, *args, **kwargs)

    monkeypatch.setattr(bm25, "get_scores", counted)
    result = recommender.recommend("fan", query="harvest")
    assert result.query_matched and result.reranked[0].item.category == "orchard"
    # retrieval and the lite reranker's query part share one pass (they were two, three with a learned stage)
    assert len(calls) == len({tuple(c) for c in calls}) >= 1
    calls.clear()
    recommender.recommend("fan", query="harvest")
    assert len(calls) == len({tuple(c) for c in calls})  # a new request scores afresh: no memo across requests
    assert calls


def test_a_common_query_word_checks_only_as_many_hits_as_it_keeps(recommender, monkeypatch):
    checked = []
    original = Filters.accepts

    def accepts(self, item):
        checked.append(item.id)
        return original(self, item)

    monkeypatch.setattr(Filters, "accepts", accepts)
    result = recommender.recommend("fan", query="report", k=5, candidates=10)
    assert result.reranked
    # every story holds "report": the lexical hits are the whole corpus, but only the first usable ones are kept
    assert len(checked) < STORIES / 3


def test_reranker_reads_positions_from_the_index_not_a_per_request_dict(recommender):
    lexical = recommender.lexical
    assert lexical.rows == {news_id: i for i, news_id in enumerate(list.__iter__(lexical.ids))}
    scored = lexical.score("harvest")
    row = lexical.rows["n003"]
    assert scored.coverage[row] > 0 and np.count_nonzero(scored.coverage) == STORIES // len(TOPICS)


def test_searches_do_not_count_the_collection_per_request(recommender, monkeypatch):
    counted = []
    collection = recommender.index.collection
    original = collection.count

    def count():
        counted.append(1)
        return original()

    monkeypatch.setattr(collection, "count", count)
    recommender.recommend("fan")  # the first search after a write may ask Chroma once
    counted.clear()
    for query in (None, "harvest", "storm flood", None):
        assert recommender.recommend("fan", query=query).reranked
    assert counted == []  # Chroma's count() reads every record: 10 ms at 100,000 stories, per search before
    recommender.index.sync(recommender.corpus)  # a write (here: nothing changed) keeps the count right
    item = NewsItem(id="n999", title="storm flood warning", category="storm", language="en", published_at=NOW)
    recommender.corpus.news["n999"] = item
    recommender.index.sync(recommender.corpus)
    assert len(recommender.index) == STORIES + 1 and recommender.index._stored_count() == STORIES + 1
