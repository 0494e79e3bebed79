"""The two-stage pipeline on a small hand-made corpus, with the deterministic fake embedder."""

from datetime import datetime, timedelta, timezone

import pytest

from newsrec.config import Settings
from newsrec.data.corpus import Corpus, save_corpus
from newsrec.errors import InputError
from newsrec.index import NewsIndex
from newsrec.pipeline import Filters, Recommender
from newsrec.profiles import apply_feedback
from newsrec.relevance import CosineScale
from newsrec.rerankers.lite import LiteReranker
from newsrec.types import HistoryEntry, NewsItem, User

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
TOPICS = {
    "battery": ("autos", "en", "solid-state battery energy density charging EV"),
    "nba": ("sports", "en", "Lakers Warriors LeBron Curry NBA game"),
    "apple": ("tech", "en", "Apple launch event iPhone chip"),
    "orchard": ("world", "en", "apple harvest orchard fruit prices farmers"),
    "电池": ("autos", "zh", "固态电池 技术 突破 能量密度 充电"),
}


def _items():
    items = []
    for topic, (category, language, words) in TOPICS.items():
        for i in range(6):
            items.append(
                NewsItem(
                    id=f"{topic}-{i}",
                    title=f"{words.split()[0]} {words.split()[i % len(words.split())]} story {i}",
                    body=f"{words} report number {i}",
                    category=category,
                    language=language,
                    published_at=NOW - timedelta(days=i * 3),
                )
            )
    return items


@pytest.fixture
def recommender(fake_embedder, newsrec_home, chroma_mode):  # embedded store and Chroma server
    settings = Settings.from_env(corpus="tiny", embedder="lite", reranker="lite")
    corpus = Corpus(name="tiny", root=settings.corpus_dir("tiny"), news={item.id: item for item in _items()})
    history = ["battery-0", "battery-1", "battery-2", "nba-0", "nba-1"]
    corpus.users = {
        "fan": User(
            "fan",
            "Fan",
            "EV and NBA reader",
            [HistoryEntry(n, NOW - timedelta(hours=5 - i)) for i, n in enumerate(history)],
        ),
        "new": User("new", "Newcomer"),
    }
    save_corpus(corpus)
    return Recommender.from_settings(settings, embedder=fake_embedder, reranker=LiteReranker(fake_embedder))


def test_recommend_returns_both_stages_and_only_a_search_shows_read_items(recommender):
    read = set(recommender.profile("fan").read_ids)
    feed = recommender.recommend("fan", k=5, candidates=20)
    assert not read & {r.item.id for r in feed.reranked + feed.retrieval}
    result = recommender.recommend("fan", query="solid-state battery", k=5, candidates=20)
    assert read & {r.item.id for r in result.retrieval}  # a search finds what matches, read or not
    assert result.mode == "lite" or result.mode == "qwen3-vl"
    assert len(result.reranked) == 5 and len(result.retrieval) == 5
    assert [r.rank for r in result.reranked] == [1, 2, 3, 4, 5]
    assert [r.retrieval_rank for r in result.retrieval] == [1, 2, 3, 4, 5]
    assert result.reranked[0].item.id.startswith("battery")
    assert all(r.explanation for r in result.reranked)
    assert {"retrieve", "rerank", "total"} <= set(result.timings_ms)
    scores = [r.score for r in result.reranked]
    assert scores == sorted(scores, reverse=True)


def test_chinese_query_is_served_by_the_lexical_retriever(recommender):
    result = recommender.recommend("new", query="固态电池技术突破", k=3)
    assert all(r.item.id.startswith("电池") for r in result.reranked)


def test_for_you_feed_follows_the_profile(recommender):
    result = recommender.recommend("fan", query=None, k=6)
    categories = [r.item.category for r in result.reranked]
    assert categories.count("autos") + categories.count("sports") >= 4
    assert "interest" in result.reranked[0].explanation or "of reading" in result.reranked[0].explanation


def test_user_without_history_gets_the_newest_stories(recommender):
    result = recommender.recommend("new", k=3)
    assert len(result.reranked) == 3


def test_filters_apply_to_both_stages(recommender):
    result = recommender.recommend("fan", query="apple", k=5, filters=Filters(categories=["world"]))
    assert {r.item.category for r in result.reranked + result.retrieval} == {"world"}


def test_second_identical_request_is_served_from_the_score_cache(recommender):
    first = recommender.recommend("fan", query="Lakers", k=3)
    second = recommender.recommend("fan", query="Lakers", k=3)
    assert first.cache_hits == 0 and second.cache_hits == second.candidates > 0
    assert [r.item.id for r in first.reranked] == [r.item.id for r in second.reranked]


def test_not_interested_removes_the_item_and_demotes_its_neighbours(recommender):
    profile = recommender.profile("fan")
    top = recommender.recommend("fan", k=3, profile=profile).reranked[0]
    embedding = recommender.index.embeddings([top.item.id])[0]
    updated = apply_feedback(profile, top.item, embedding, liked=False)
    after = recommender.recommend("fan", k=3, profile=updated)
    assert top.item.id not in {r.item.id for r in after.reranked}


def test_diversity_and_category_cap_change_the_list(recommender):
    capped = recommender.recommend("fan", k=6, category_cap=2)
    categories = [r.item.category for r in capped.reranked]
    assert max(categories.count(c) for c in set(categories)) <= 2


@pytest.mark.parametrize("kwargs", [{"query": "x" * 5000}, {"k": 0}, {"candidates": -1}])
def test_bad_requests_raise_clear_errors(recommender, kwargs):
    with pytest.raises(InputError):
        recommender.recommend("fan", **kwargs)


def test_guest_needs_no_history_in_any_corpus(recommender):
    assert "guest" not in recommender.corpus.users
    result = recommender.recommend("guest", query="Lakers", k=3)
    assert len(result.reranked) == 3 and result.reranked[0].item.id.startswith("nba")


def test_unknown_user_is_a_clear_error(recommender):
    with pytest.raises(InputError, match="unknown user"):
        recommender.recommend("nobody")


def test_score_candidates_aligns_with_the_given_list(recommender):
    profile = recommender.profile_from_history(["nba-0", "nba-1"])
    ids = ["nba-3", "orchard-2", "missing-id"]
    retrieval, rerank = recommender.score_candidates(profile, ids)
    assert len(retrieval) == len(rerank) == 3
    assert retrieval[0] > retrieval[1] and rerank[0] > rerank[1]
    assert retrieval[2] == rerank[2] == 0.0


def test_index_is_reused_across_recommenders(recommender, fake_embedder):
    calls = fake_embedder.calls
    again = Recommender.from_settings(
        recommender.settings, embedder=fake_embedder, reranker=LiteReranker(fake_embedder)
    )
    assert fake_embedder.calls == calls  # nothing re-embedded
    assert isinstance(again.index, NewsIndex)


def test_a_query_that_matches_nothing_says_so_and_shows_the_for_you_feed(recommender):
    recommender.embedder.query_scale = CosineScale(floor=0.99)  # the fake embedder: no cosine counts as a match
    result = recommender.recommend("fan", query="zxqv blorp", k=5)
    assert result.query_matched is False and "zxqv blorp" in result.notice and "For-you" in result.notice
    assert result.query == "zxqv blorp"
    assert [r.item.id for r in result.reranked] == [r.item.id for r in recommender.recommend("fan", k=5).reranked]
    matched = recommender.recommend("fan", query="Lakers", k=5)  # a real term is a match
    assert matched.query_matched and matched.notice == "" and matched.reranked[0].item.id.startswith("nba")
    # A word no story has is what the query asks for, as much as any (issue 18: "COVID vaccine" in a corpus
    # with flu vaccines is not covered): one real term beside it does not cover the query.
    assert recommender.recommend("fan", query="Lakers zxqv", k=5).query_matched is False
