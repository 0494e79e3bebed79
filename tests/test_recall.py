"""The For-you first stage's two sources (interests + trending by CTR prior) and ingest's learned stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from newsrec.config import Settings
from newsrec.evaluation.offline import make_scorers
from newsrec.evaluation.split import split_users
from newsrec.learning.popularity import ExposurePopularity
from newsrec.recall import TREND_CLIP, ForYouRecall
from newsrec.types import Impression, NewsItem


def _news(n: int = 12) -> dict[str, NewsItem]:
    return {f"n{i}": NewsItem(id=f"n{i}", title=f"story {i}", category="news", source="x") for i in range(n)}


def _clicky_log(news: dict[str, NewsItem], hot: str, users: int = 40) -> list[Impression]:
    """Every reader is shown all items; `hot` is clicked every time, one other item now and then."""
    ids = list(news)
    return [
        Impression(f"i{u}", f"user{u}", [], ids, [int(i == hot or (u + k) % 7 == 0) for k, i in enumerate(ids)])
        for u in range(users)
    ]


def test_prior_term_is_bounded_and_absent_without_a_log():
    news = _news()
    prior = ExposurePopularity.fit(_clicky_log(news, "n3"), news, position_corrected=False)
    recall = ForYouRecall(prior, news, weight=0.2)
    bonus = recall.bonus(list(news))
    assert bonus[3] == pytest.approx(0.2 * TREND_CLIP)  # a story everyone clicks gains at most the weight
    assert np.all(np.abs(bonus) <= 0.2 * TREND_CLIP + 1e-12)
    cosines = np.linspace(0.1, 0.6, len(news))
    assert recall.score(list(news), cosines) == pytest.approx(cosines + bonus)
    # a clear interest (cosine 0.6 vs 0.2) is never overtaken by the front page
    assert recall.score(["n0", "n3"], np.array([0.6, 0.2]))[0] > recall.score(["n0", "n3"], np.array([0.6, 0.2]))[1]
    for none in (ForYouRecall(None, news, 0.2), ForYouRecall(prior, news, 0.0)):
        assert not none.active and none.bonus(list(news)).tolist() == [0.0] * len(news)
        assert none.trending(100, lambda _: True) == []


def test_trending_offers_a_quarter_of_the_pool_of_what_readers_click_more():
    news = _news(40)
    prior = ExposurePopularity.fit(_clicky_log(news, "n3"), news, position_corrected=False)
    recall = ForYouRecall(prior, news, weight=0.2)
    top = recall.trending(8, lambda _: True)
    assert top[0] == "n3" and len(top) <= 2  # 8 x 0.25
    assert all(prior.logit([i])[0] > 0 for i in recall.trending(100, lambda _: True))
    assert "n3" not in recall.trending(8, lambda news_id: news_id != "n3")  # read / filtered items stay out


@pytest.fixture
def demo_recommender(fake_embedder):
    from newsrec.pipeline import Recommender
    from newsrec.rerankers.lite import LiteReranker

    settings = Settings.from_env(embedder="lite", reranker="lite")
    return Recommender.from_settings(settings, embedder=fake_embedder, reranker=LiteReranker(fake_embedder))


def test_for_you_pool_takes_trending_stories_in_and_ranks_by_the_fused_score(demo_recommender):
    recommender = demo_recommender
    assert not recommender.recall.active  # the demo corpus holds no impressions: interests alone
    before = recommender.recommend("u07", candidates=30)
    pool_before = {card.item.id for card in before.retrieval}
    profile = recommender.profile("u07")
    outsider = next(i for i in recommender.corpus.news if i not in profile.read_ids and i not in pool_before)
    others = [i for i in recommender.corpus.news if i != outsider][:30]
    log = [Impression(f"i{u}", f"r{u}", [], [outsider, *others], [1] + [0] * len(others)) for u in range(30)]
    prior = ExposurePopularity.fit(log, recommender.corpus.news, position_corrected=False)
    recommender.recall = ForYouRecall(prior, recommender.corpus.news, weight=0.2)
    after = recommender._retrieve("", None, profile, 30, _filters())[0]
    scores = {c.item.id: c.retrieval_score for c in after}
    assert outsider in scores  # found by the trending source, not by any interest
    vector = recommender.index.embeddings([outsider])[0]
    cosine = max(float(vector @ interest.vector) for interest in profile.interests)
    assert scores[outsider] == pytest.approx(cosine + 0.2 * TREND_CLIP, abs=1e-5)
    assert [c.retrieval_score for c in after] == sorted(scores.values(), reverse=True)
    assert not {c.item.id for c in after} & profile.read_ids


def _filters():
    from newsrec.pipeline import Filters

    return Filters()


def test_evaluated_first_stage_counts_training_users_only(demo_recommender):
    """`retrieval` = cosine + the prior term, the prior from training users: test labels never move it."""
    from newsrec.evaluation.demo_logs import build_demo_impressions

    impressions = build_demo_impressions(demo_recommender.corpus, readers_per_user=6)
    split = split_users(impressions, seed=0)
    retrieval = make_scorers(["retrieval"], split.train, demo_recommender, split="user")[0]
    test = split.test[0]
    flipped = Impression(test.id + "x", "x", test.history, test.candidates, [1 - label for label in test.labels])
    assert retrieval.score(flipped) == pytest.approx(retrieval.score(test))
    profile = demo_recommender.profile_from_history(test.history)
    vectors = demo_recommender.index.embeddings(test.candidates)
    cosine = (vectors @ np.stack([i.vector for i in profile.interests]).T).max(axis=1)
    prior = ExposurePopularity.fit(split.train, demo_recommender.corpus.news)
    expected = cosine + 0.2 * np.clip(prior.logit(test.candidates), -TREND_CLIP, TREND_CLIP)
    assert retrieval.score(test) == pytest.approx(expected.tolist(), abs=1e-5)


# --- ingest fits the learned stage ------------------------------------------------------------------------


def _mind_log(folder: Path, users: int = 60) -> Path:
    """A MIND log of 60 readers: 24 stories, two of them clicked far more often than the rest."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    topics = ["sports", "finance", "health", "science"]
    news = [
        f"N{i}\t{topics[i % 4]}\t{topics[i % 4]}\tStory {i} about {topics[i % 4]}\tBody {i}.\t\t[]\t[]"
        for i in range(24)
    ]
    (folder / "news.tsv").write_text("\n".join(news) + "\n")
    appeal = np.full(24, 0.08)
    appeal[[2, 5]] = 0.6
    lines = []
    for n in range(users * 3):
        shown = rng.choice(24, 10, replace=False)
        clicks = (rng.random(10) < appeal[shown]).astype(int)
        if not clicks.any():
            clicks[0] = 1
        history = " ".join(f"N{i}" for i in rng.choice(24, 3, replace=False))
        pairs = " ".join(f"N{i}-{c}" for i, c in zip(shown, clicks, strict=True))
        lines.append(f"{n}\tU{n % users}\t11/11/2019 9:05:58 AM\t{history}\t{pairs}")
    (folder / "behaviors.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
def test_ingest_of_a_log_fits_the_learned_stage_the_pipeline_serves(tmp_path, fake_embedder, monkeypatch, capsys):
    """Without a model the pipeline's second stage is the fixed blend; after `ingest` of a log with 50+
    users it is a model learned from that log's training users, and re-ingesting the same log keeps it."""
    import newsrec.embedders as embedders
    from newsrec.cli import main
    from newsrec.learning import store
    from newsrec.learning.stage import LearnedStage
    from newsrec.pipeline import Recommender

    monkeypatch.setattr(embedders, "get_embedder", lambda *a, **k: fake_embedder)
    monkeypatch.setattr("newsrec.pipeline.get_embedder", lambda *a, **k: fake_embedder)
    monkeypatch.setenv("NEWSREC_RERANKER", "lite")
    folder = _mind_log(tmp_path / "clicks")
    assert main(["ingest", str(folder), "--format", "mind", "--corpus", "clicks", "--no-train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] is None
    assert store.load(Settings.from_env().home, "clicks") is None

    assert main(["ingest", str(folder), "--format", "mind", "--corpus", "clicks", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"].startswith("learned model clicks/v1/")
    recommender = Recommender.from_settings(Settings.from_env(corpus="clicks", embedder="lite", reranker="lite"))
    assert isinstance(recommender.stage, LearnedStage) and recommender.stage.name.startswith("learned:clicks/v1")
    assert recommender.recall.active  # and the For-you recall has its trending source

    assert main(["ingest", str(folder), "--format", "mind", "--corpus", "clicks", "--json"]) == 0
    assert "unchanged" in json.loads(capsys.readouterr().out)["model"]
    assert store.load(Settings.from_env().home, "clicks").version == "v1"


def test_ingest_of_a_small_log_says_why_it_did_not_train(tmp_path, fake_embedder, monkeypatch, capsys):
    import newsrec.embedders as embedders
    from newsrec.cli import main

    monkeypatch.setattr(embedders, "get_embedder", lambda *a, **k: fake_embedder)
    folder = _mind_log(tmp_path / "few", users=10)
    assert main(["ingest", str(folder), "--format", "mind", "--json"]) == 0
    assert "10 users" in json.loads(capsys.readouterr().out)["model"]


def test_weight_sweep_reads_training_users_only(demo_recommender):
    from newsrec.evaluation.demo_logs import build_demo_impressions
    from newsrec.evaluation.sweep import sweep

    impressions = build_demo_impressions(demo_recommender.corpus, readers_per_user=6)
    test_users = split_users(impressions, seed=0).test_users
    flipped = [
        Impression(i.id, i.user_id, i.history, i.candidates, [1 - label for label in i.labels])
        if i.user_id in test_users
        else i
        for i in impressions
    ]
    grid = sweep(demo_recommender, impressions)
    assert grid == sweep(demo_recommender, flipped)
    first = grid["first stage: cosine + w x clipped prior"]
    assert first["0.2"] > first["0.0"]  # the demo readers' clicks follow each story's appeal too
