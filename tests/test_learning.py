"""Learning from impression logs: the user split, exposure-aware popularity, the learned ranker, its store."""

from __future__ import annotations

import numpy as np
import pytest

from newsrec.config import Settings
from newsrec.data.corpus import load_corpus
from newsrec.errors import InputError
from newsrec.evaluation.offline import PopularityScorer, evaluate, make_scorers
from newsrec.evaluation.split import default_split, is_test_user, split_users
from newsrec.learning import ranker as ranking
from newsrec.learning import store
from newsrec.learning.popularity import ExposurePopularity, has_position_bias
from newsrec.types import Impression, NewsItem

# --- the user split -------------------------------------------------------------------------------------


def _log(users: int = 200, per_user: int = 3) -> list[Impression]:
    return [
        Impression(f"{u}-{k}", f"user{u}", [], ["a", "b", "c"], [int(k == 0), int(k == 1), int(k == 2)])
        for u in range(users)
        for k in range(per_user)
    ]


def test_user_split_is_disjoint_deterministic_and_about_a_fifth():
    log = _log()
    first, again = split_users(log, seed=0), split_users(list(reversed(log)), seed=0)
    assert first.train_users.isdisjoint(first.test_users)
    assert first.train_users | first.test_users == {i.user_id for i in log}
    assert first.test_users == again.test_users  # by hash of the id: log order does not matter
    assert 0.12 < len(first.test_users) / 200 < 0.28
    assert split_users(log, seed=1).test_users != first.test_users
    assert all(len([i for i in first.test if i.user_id == u]) == 3 for u in first.test_users)  # whole users
    assert default_split(log) == "user" and default_split(log[:30]) == "none"


# --- exposure-aware popularity --------------------------------------------------------------------------


def test_popularity_counts_training_users_only():
    """Flipping every test label changes no popularity score: test clicks are never counted."""
    log = _log()
    split = split_users(log, seed=0)
    news = {i: NewsItem(id=i, title=i) for i in "abc"}
    scorer = make_scorers(["popularity"], split.train, split="user", news=news)[0]
    flipped = [Impression(i.id, i.user_id, [], i.candidates, [1 - x for x in i.labels]) for i in split.test]
    for original, changed in zip(split.test, flipped, strict=True):
        assert scorer.score(original) == scorer.score(changed)
    # ...whereas counting the whole log (a leak) would see them
    leaky = PopularityScorer([*split.train, *flipped], news)
    assert leaky.model.items["a"].clicks != scorer.model.items["a"].clicks


def test_coec_removes_a_known_position_bias():
    """Two items with the same true CTR, one always shown on top: raw CTR favours it, COEC does not."""
    rng = np.random.default_rng(0)
    examination = 1 / (1 + np.arange(6))  # slot 1 seen always, slot 6 one time in six
    true_ctr = {"top": 0.3, "low": 0.3, **{f"x{k}": 0.1 for k in range(20)}}
    impressions = []
    for n in range(6000):
        fillers = list(rng.choice([f"x{k}" for k in range(20)], size=4, replace=False))
        shown = ["top", *fillers, "low"]
        labels = [int(rng.random() < examination[s] * true_ctr[i]) for s, i in enumerate(shown)]
        impressions.append(Impression(str(n), f"u{n}", [], shown, labels))
    raw = ExposurePopularity.fit(impressions, {}, position_corrected=False)
    coec = ExposurePopularity.fit(impressions, {})
    assert coec.position_corrected  # detected from the log itself
    top, low = raw.ctr(["top", "low"])
    assert top > 4 * low
    top, low = coec.ctr(["top", "low"])
    assert top == pytest.approx(low, rel=0.25)
    # with the same items in random display order nothing is corrected
    shuffled = [Impression(i.id, i.user_id, [], i.candidates[::-1], i.labels[::-1]) for i in impressions[:2]]
    slot_clicks, slot_shows = np.array([10.0, 10, 10, 10]), np.array([100.0, 100, 100, 100])
    assert not has_position_bias(slot_clicks, slot_shows) and shuffled


def test_cold_items_get_their_category_and_publisher_rate():
    news = {
        "hot1": NewsItem("hot1", "t", category="sports", source="espn"),
        "hot2": NewsItem("hot2", "t", category="sports", source="espn"),
        "dull": NewsItem("dull", "t", category="finance", source="ft"),
        "new-sports": NewsItem("new-sports", "t", category="sports", source="espn"),
        "new-finance": NewsItem("new-finance", "t", category="finance", source="ft"),
    }
    log = [Impression(str(n), f"u{n}", [], ["hot1", "hot2", "dull"], [n % 2, (n + 1) % 2, 0]) for n in range(200)]
    model = ExposurePopularity.fit(log, news, position_corrected=False)
    sports, finance = model.ctr(["new-sports", "new-finance"])
    assert sports > 0.3 > 0.05 > finance
    assert model.ctr(["hot1"])[0] > model.ctr(["dull"])[0]


# --- the ranker and its store ---------------------------------------------------------------------------


def _rows(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 0.8).astype(int)
    return x, y, np.arange(n) // 6


@pytest.mark.parametrize("kind", ranking.KINDS)
def test_contributions_add_up_to_the_score_and_survive_save_and_load(kind, newsrec_home):
    x, y, groups = _rows()
    model = ranking.fit(kind, x, y, groups, ["good", "bad", "noise"])
    parts = model.contributions(x[:20])
    assert parts.shape == (20, 4)
    assert parts.sum(axis=1) == pytest.approx(model.predict(x[:20]))
    assert ranking.mean_auc(model.predict(x), y, groups) > 0.75
    log = [Impression("1", "u", [], ["a", "b"], [1, 0])]
    saved = store.SavedModel(model, "tiny", "", store.data_hash(log), "lite-personal-v1", "fake", {"auc": 0.8})
    folder = store.save(newsrec_home, saved)
    assert folder.name == "v1" and store.save(newsrec_home, saved).name == "v2"
    loaded = store.load(newsrec_home, "tiny")
    assert loaded.version == "v2" and loaded.ranker.features == ["good", "bad", "noise"]
    assert loaded.data_hash == store.data_hash(log) != store.data_hash([Impression("1", "u", [], ["a", "b"], [0, 1])])
    assert loaded.metrics == {"auc": 0.8}
    assert loaded.ranker.predict(x[:20]) == pytest.approx(model.predict(x[:20]))
    assert store.load(newsrec_home, "other") is None


def test_unreadable_model_is_a_clear_error(newsrec_home):
    x, y, groups = _rows()
    model = ranking.fit("logistic", x, y, groups, ["good", "bad", "noise"])
    folder = store.save(newsrec_home, store.SavedModel(model, "tiny", "", "h", "r", "e"))
    (folder / "model.json").write_text("{not json")
    with pytest.raises(InputError, match="retrain"):
        store.load(newsrec_home, "tiny")


# --- end to end on the demo logs ------------------------------------------------------------------------


@pytest.fixture
def demo_recommender(fake_embedder):
    from newsrec.pipeline import Recommender
    from newsrec.rerankers.lite import LiteReranker

    settings = Settings.from_env(embedder="lite", reranker="lite")
    return Recommender.from_settings(settings, embedder=fake_embedder, reranker=LiteReranker(fake_embedder))


def test_demo_logs_follow_the_personas():
    from newsrec.evaluation.demo_logs import build_demo_impressions, persona_taste

    corpus = load_corpus(Settings.from_env(), "demo")
    impressions = build_demo_impressions(corpus, readers_per_user=6, seed=0)
    assert impressions == build_demo_impressions(corpus, readers_per_user=6, seed=0)
    taste = persona_taste(corpus)
    clicked, skipped = [], []
    for impression in impressions:
        persona = impression.user_id.rsplit("-r", 1)[0]
        assert not set(impression.candidates) & set(impression.history) and len(impression.candidates) == 20
        for news_id, label in zip(impression.candidates, impression.labels, strict=True):
            (clicked if label else skipped).append(taste[persona][news_id])
    assert np.mean(clicked) > np.mean(skipped) + 0.1  # readers click their persona's topics


def test_learned_scores_never_read_test_labels(demo_recommender):
    from newsrec.evaluation.demo_logs import build_demo_impressions

    impressions = build_demo_impressions(demo_recommender.corpus, readers_per_user=8)
    split = split_users(impressions, seed=0)
    learned = make_scorers(["learned"], split.train, demo_recommender, split="user", model_kind="logistic")[0]
    test = split.test[0]
    flipped = Impression(test.id + "x", "x", test.history, test.candidates, [1 - label for label in test.labels])
    assert learned.score(flipped) == pytest.approx(learned.score(test))
    with pytest.raises(InputError, match="split user"):
        make_scorers(["learned"], impressions, demo_recommender, split="none")


@pytest.mark.slow
def test_auto_keeps_personal_features_only_where_they_beat_the_prior(demo_recommender):
    """Clicks that follow the personas keep the personal features; clicks that follow each story's own
    appeal alone (same rate for every reader) leave the CTR prior by itself."""
    from newsrec.evaluation.demo_logs import build_demo_impressions
    from newsrec.learning.train import PRIOR_FEATURES, train

    personal = build_demo_impressions(demo_recommender.corpus, readers_per_user=8)
    assert "interest" in train(demo_recommender, personal, "auto").ranker.features

    rng = np.random.default_rng(0)
    ids = sorted(demo_recommender.corpus.news)
    appeal = dict(zip(ids, rng.uniform(0.02, 0.6, len(ids)), strict=True))
    by_appeal = []
    for n in range(600):
        history = list(rng.choice(ids, 5, replace=False))
        shown = list(rng.choice([i for i in ids if i not in history], 8, replace=False))
        clicks = [int(rng.random() < appeal[i]) for i in shown]
        by_appeal.append(Impression(f"a{n}", f"reader{n % 150}", history, shown, clicks))
    trained = train(demo_recommender, by_appeal, "auto")
    assert trained.ranker.features == list(PRIOR_FEATURES) and trained.builder.names == list(PRIOR_FEATURES)
    assert trained.selection["prior only"] >= trained.selection["logistic"] - 0.01


@pytest.mark.slow
def test_cli_train_then_pipeline_uses_the_model_and_evaluate_learned(fake_embedder, monkeypatch, capsys):
    """`train` saves a model the pipeline then serves with; cards carry contributions that add up."""
    import json

    import newsrec.embedders as embedders
    from newsrec.cli import main
    from newsrec.learning.stage import BlendStage, LearnedStage
    from newsrec.pipeline import Recommender

    monkeypatch.setattr(embedders, "get_embedder", lambda *a, **k: fake_embedder)
    monkeypatch.setattr("newsrec.pipeline.get_embedder", lambda *a, **k: fake_embedder)
    settings = Settings.from_env(embedder="lite", reranker="lite")
    before = Recommender.from_settings(settings)
    assert isinstance(before.stage, BlendStage) and before.stage.prior is None  # the demo corpus has no log
    assert main(["train", "--embedder", "lite", "--reranker", "lite", "--kind", "logistic", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model_id"] == "demo/v1/logistic" and trained["metrics"]["learned"]["auc"] > 0.55
    after = Recommender.from_settings(settings)
    assert isinstance(after.stage, LearnedStage)
    result = after.recommend("u01")
    assert result.reranker == "learned:demo/v1/logistic"
    for card in result.reranked:
        assert sum(card.contributions.values()) == pytest.approx(card.score)
        assert "popularity" in card.contributions and card.explanation
    flags = ["--embedder", "lite", "--reranker", "lite", "--scorer", "retrieval", "--scorer", "learned", "--json"]
    assert main(["evaluate", *flags]) == 0
    report = json.loads(capsys.readouterr().out)
    auc = {row["scorer"]: row["auc"] for row in report["scorers"]}
    assert report["split"] == "user" and auc["learned"] > auc["retrieval"] + 0.03  # the personas' clicks are learnt


@pytest.mark.slow
def test_nemig_popularity_on_the_user_split(nemig_dir):
    """Known on NeMig-en: smoothed CTR ~0.533 on test users, raw counts ~0.519; the order is the display order."""
    from newsrec.evaluation.offline import load_mind_log

    log = load_mind_log(nemig_dir / "news.tsv")
    split = split_users(log.impressions, seed=0)
    assert not {i.user_id for i in split.train} & {i.user_id for i in split.test}
    smoothed = PopularityScorer(split.train, log.news)
    assert smoothed.model.position_corrected
    report = evaluate(split.test, [smoothed], n_boot=50)
    assert report.summary["auc"].iloc[0] > 0.52
    assert all(is_test_user(i.user_id) for i in split.test)


# --- explanations from contributions --------------------------------------------------------------------


def test_explanations_never_claim_a_query_match_the_score_did_not_use():
    from newsrec.explain import explain
    from newsrec.types import Interest, UserProfile

    item = NewsItem("n1", "Apple harvest prices rise", category="farming", source="agri")
    vector = np.array([1.0, 0.0], dtype=np.float32)
    profile = UserProfile("u", [Interest("apple · harvest", vector, 1.0)], categories={"farming": 0.6})
    quiet = explain(
        item, {"query": 0.0, "interest": 0.5, "popularity": 0.2, "base": -1.0}, vector, profile, {}, {}, "apple"
    )
    assert "query" not in {r.kind for r in quiet.reasons} and "matches the query" not in quiet.line
    assert quiet.reasons[0].kind == "interest" and quiet.reasons[0].detail == "apple · harvest"
    assert "often clicked" in quiet.line
    loud = explain(item, {"query": 2.0, "interest": 0.1}, vector, profile, {}, {}, "apple prices")
    assert loud.reasons[0].kind == "query" and loud.reasons[0].detail == "apple, prices"
    assert loud.line.startswith("matches the query (apple, prices)")
    shares = explain(item, {"query": 1.0, "category": 1.0, "avoid": -2.0}, vector, profile, {}, {}, "x")
    assert [r.kind for r in shares.reasons] == ["query", "category", "avoid"]
    assert sum(abs(r.share) for r in shares.reasons) == pytest.approx(1.0)


def test_nonsense_query_cards_claim_no_query_match(demo_recommender):
    result = demo_recommender.recommend("u07", query="zxqv blorp")
    for card in [*result.reranked]:
        assert sum(card.contributions.values()) == pytest.approx(card.score)
        if "matches the query" in card.explanation:
            query_share = next(r.share for r in card.reasons if r.kind == "query")
            assert card.contributions["query"] > 0 and query_share >= 0.1


def test_a_model_rerankers_score_is_a_feature_of_the_learned_ranker(demo_recommender):
    """With a reranker that is a model (Qwen3-VL on a GPU; a fake here), its score is the `model` feature."""
    from newsrec.evaluation.demo_logs import build_demo_impressions
    from newsrec.learning.stage import LearnedStage
    from newsrec.learning.train import train
    from newsrec.pipeline import Recommender

    class LengthReranker:  # scores longer titles higher: any deterministic model will do
        name = "fake-model"

        def score(self, request, candidates):
            return [len(c.item.title) / 100 for c in candidates]

    base = demo_recommender
    recommender = Recommender(base.settings, base.corpus, base.embedder, LengthReranker(), base.index, base.cache)
    impressions = build_demo_impressions(base.corpus, readers_per_user=4)
    trained = train(recommender, impressions, kind="logistic")
    assert trained.builder.names[-1] == "model" and trained.ranker.coef[-1] != 0
    recommender.stage = LearnedStage(
        store.SavedModel(trained.ranker, "demo", "t", "h", "fake-model", base.embedder.name),
        trained.builder,
        base.embedder,
    )
    card = recommender.recommend("u01").reranked[0]
    assert "model" in card.contributions and sum(card.contributions.values()) == pytest.approx(card.score)
